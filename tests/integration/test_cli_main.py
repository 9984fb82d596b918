from leadingterms.cli import main


def test_no_command_prints_help(capsys):
    assert main([]) == 2


def test_unknown_command_one_line(capsys):
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err
