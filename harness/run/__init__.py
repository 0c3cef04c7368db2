"""What surrounds the run's steps (harness/workflow.py) on the way to pytest and back: the
stop signals (`signals`), the check of what the cells' pytest run will select before any
image is built (`selection`, a collect-only pytest), the cells step as that pytest run
(`cells`), and the end of the run in the terminal (`summary`). Imports nothing at load: the
plugin, which loads in every pytest, takes `signals` from here."""
