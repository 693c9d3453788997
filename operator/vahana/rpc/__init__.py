"""gRPC servicers: WorkerService for workers, TaskService for clients; wire ↔ core records."""
