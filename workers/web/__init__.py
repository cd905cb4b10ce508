"""`drumline web`: the schedules as pages and JSON, and the lifecycle actions, for operators."""
