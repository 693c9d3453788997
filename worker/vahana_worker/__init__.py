"""The Vahana worker: registers with a Vahana scheduler over gRPC and runs the tasks it hands out.

This package never imports the scheduler (`vahana`); it depends on grpcio, protobuf and the
standard library only, so that it can be shipped to compute nodes as one zipapp.
"""

__version__ = "0.1.0"
