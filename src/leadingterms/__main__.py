from leadingterms.cli import run

run()
