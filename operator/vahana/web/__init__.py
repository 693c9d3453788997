"""The web dashboard: live pages of the queue, tasks, workers and pools, served by the scheduler.

Beside `rpc`, `k8s` and `observability`, wired by `app`: it reads the scheduler (its listener
for task changes, its memory for workers and the queue, the store through the scheduler's
reads off the event loop) and never changes anything but by `Scheduler.cancel_async`, behind
the client token. Its assets ship in `assets/`: nothing is fetched at run time.
"""
