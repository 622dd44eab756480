"""`flagd webhooks`, in process (the command line itself, child processes and all, is tested in
tests/flagd/test_cli.py)."""

from __future__ import annotations

import pytest

from flagd.cli import main
from tests.support import free_port


def test_should_create_list_test_read_and_delete_a_webhook(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--database-url", database_url)
    url = f"http://127.0.0.1:{free_port()}/in"
    assert (
        main(["webhooks", "create", "ops", url, "--kind", "flag.changed", "--kind", "rollout.held", *db]) == 0
    )
    created = capsys.readouterr()
    assert created.out.startswith("whsec_")
    assert "only time its secret is shown" in created.err

    assert main(["webhooks", "create", "x", "ftp://nope", "--kind", "flag.changed", *db]) == 1
    refused = capsys.readouterr()
    assert "url" in refused.err
    assert "http://" in refused.err
    assert refused.out == ""

    assert main(["webhooks", "list", *db]) == 0
    (_header, row) = capsys.readouterr().out.splitlines()
    assert "flag.changed,rollout.held -> " + url in row
    webhook_id = row.split()[0]

    assert main(["webhooks", "test", "ops", *db]) == 1  # nobody listens on that port
    assert "did not take the test" in capsys.readouterr().err
    assert main(["webhooks", "deliveries", webhook_id, *db]) == 0
    log = capsys.readouterr()
    assert "0 pending, 0 delivered, 0 failed" in log.err
    assert " test " in log.out.splitlines()[1]

    assert main(["webhooks", "delete", "ops", *db]) == 0
    assert main(["webhooks", "delete", "ops", *db]) == 1
    assert "there is no webhook ops" in capsys.readouterr().err
