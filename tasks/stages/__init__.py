"""One module per nox session, named only by the catalogue (tasks.stages.<session>:run).

A stage module parses its arguments, calls the domain packages, records evidence and returns
the verdict; nothing imports a stage module.
"""
