"""The local stack behind `drumline up`: the data dir, secrets, child processes and their argv."""
