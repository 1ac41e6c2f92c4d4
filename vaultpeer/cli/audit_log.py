"""`vaultpeer log`: this device's audit log, and `log --verify` to check its hash chain.

Presentation only: the entries and their chain are ``vaultpeer.core.audit``, the table is read
through ``Vault.audit_trail``. It uses the helpers of ``vaultpeer.cli.app`` and registers on its group when
the ``vaultpeer.cli`` package imports it. The log is read straight from the home's database (read while a daemon runs
too: SQLite's WAL lets readers in), and needs no password: it holds no secret.
"""

import sys

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vaultpeer.cli.app import EXIT_INTEGRITY, Context, cli, json_option, pass_context, print_json, reports_errors
from vaultpeer.core.audit import ChainReport, parse_noted_head, verify_chain
from vaultpeer.core.identity import DeviceId
from vaultpeer.core.text import inert
from vaultpeer.service.views import audit_entry_json

def _noted_head(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        return parse_noted_head(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--head") from None


@cli.command(name="log")
@click.option("--verify", is_flag=True,
              help="Check the whole hash chain and every signature instead of listing: prints the entry count and "
                   "the head hash (note it down); exit 6 names the first entry that was altered, removed or moved.")
@click.option("--head", "noted_head", metavar="HEX",
              help="With --verify (implied): also require the entry with this hash, noted from an earlier "
                   "`log --verify`, to still be in the log; this is what shows that newer entries were removed.")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="List only the newest N entries.")
@json_option
@pass_context
@reports_errors
def log_command(ctx: Context, verify: bool, noted_head: str | None, limit: int | None, as_json: bool) -> None:
    """Show this device's audit log, oldest entry first (no password needed).

    It records unlocks and failed unlocks, password changes, pairings (and failed ones), devices
    admitted and revoked, input refused from the network (at most one entry per address and
    minute, with a count) and from bundles, bundles and items imported, and restores from a
    backup. It never holds a secret or anything of an item: only event names, times, device ids
    and names, addresses, counts and reason words.

    Each entry is chained to the one before by a BLAKE2b hash and signed with this device's audit
    key (older entries: its signing key), so `log --verify` finds an entry that was altered,
    removed or moved. Someone holding this device's key files could still rewrite the log (the
    audit key is kept in clear, so that a locked device can record), and removing the newest
    entries shows only against a head hash you noted (`log --verify --head HEX`).
    """
    expected = _noted_head(noted_head)
    with ctx.open_vault() as vault:
        if verify or expected is not None:
            report = verify_chain(vault.audit_trail.rows(), vault.audit_public_keys, expected_head=expected)
            _print_report(report, as_json)
            return
        rows = vault.audit_trail.rows(newest=limit)
    entries = [audit_entry_json(row) for row in rows]
    if as_json:
        print_json(entries)
        return
    if not entries:
        click.echo("The audit log is empty.")
        return
    table = Table(box=None, show_header=True, header_style="bold")
    for column in ("SEQ", "TIME (UTC)", "EVENT", "DETAILS"):
        table.add_column(column)
    for entry in entries:
        # the details were checked when written and read (a name is shown escaped); inert anyway
        table.add_row(str(entry["seq"]), str(entry["time"]).replace("T", " ").rstrip("Z"),
                      Text(inert(entry["event"])), Text(inert(_details_text(entry["details"]))))
    Console(highlight=False).print(table)


def _details_text(details: dict) -> str:
    shown = []
    for key, value in details.items():
        if key == "device_id":
            value = DeviceId.parse(value).short
        shown.append(f"{key}={value}")
    return " ".join(shown)


def _print_report(report: ChainReport, as_json: bool) -> None:
    if as_json:
        print_json(report.to_json())
    head = report.head.hex() if report.head is not None else "(none)"
    if report.ok:
        if not as_json:
            click.echo(f"chain intact: {report.count} entries, head {head}")
        return
    if report.first_bad is None:
        click.echo(f"error: audit log: the entry with the noted head hash is not in the log: newer entries were "
                   f"removed or the log was replaced ({report.count} entries, head {head})", err=True)
    else:
        click.echo(f"error: audit log broken at entry {report.first_bad}: {report.problem} "
                   f"({report.count} entries before it are intact, head {head})", err=True)
    sys.exit(EXIT_INTEGRITY)
