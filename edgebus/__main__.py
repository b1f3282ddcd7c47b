from edgebus.cli import app

app(prog_name="edgebus")
