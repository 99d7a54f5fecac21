from plantguard.cli import app

app()
