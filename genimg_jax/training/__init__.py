"""The training layer: the loop, the compiled run, checkpoints, preemption, the NaN guard, workdir identity and
the run's logs. It owns devices, files and time, so that methods stay pure functions."""
