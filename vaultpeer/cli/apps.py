"""`vaultpeer apps`: the apps that asked for a token of the running daemon, and the person's answers
(approve, deny, revoke). Presentation only: the daemon keeps the apps (io/app_access.py); these
commands call its app.* methods with the command line's own token (docs/api.md, "App tokens").

It uses the helpers of ``vaultpeer.cli.app`` and registers on its group when the group first
needs it (``CommandGroup.LAZY``).
"""

import sys
import time

import click

from vaultpeer.cli.app import Context, cli, json_option, pass_context, print_json, reports_errors
from vaultpeer.core.errors import NotFound
from vaultpeer.core.text import inert


@cli.group(invoke_without_command=True)
@json_option
@pass_context
@click.pass_context
@reports_errors
def apps(click_ctx: click.Context, ctx: Context, as_json: bool) -> None:
    """List the apps with a token, and those waiting for your answer (approve, deny, revoke).

    An app asks for a token with the API's app.register, naming the scopes it wants: read
    (search, get, otp), write (add, edit, delete...), admin (pairing, passwd, export, backup),
    read and write optionally limited to a folder (read:folder=Work) or a tag (write:tag=ci).
    It presents the token on each connection; `vaultpeer daemon --require-app-tokens` refuses
    connections without one. Needs the running daemon."""
    if click_ctx.invoked_subcommand is not None:
        return
    with ctx.require_daemon() as client:
        listing = client.call("app.list")
    if as_json:
        print_json(listing)
        return
    if not listing:
        click.echo("No apps.")
        return
    for entry in listing:
        click.echo(_line(entry))


def _line(entry: dict) -> str:
    scopes = ", ".join(inert(s) for s in entry["scopes"])
    if entry["state"] == "approved":
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry["approved"]))
        return f"{inert(entry['name'])}  approved {since}  [{scopes}]"
    return (f"{inert(entry['name'])}  WAITING for your answer  [{scopes}]  pid {entry['pid']}  "
            f"{inert(entry['exe'] or '(executable unknown)')}")


@apps.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="Approve without asking (scripts): check `vaultpeer apps` first.")
@json_option
@pass_context
@reports_errors
def approve(ctx: Context, name: str, yes: bool, as_json: bool) -> None:
    """Give the waiting app NAME its token: shows its program, process id and scopes, and asks."""
    with ctx.require_daemon() as client:
        request = _waiting(client.call("app.list"), name)
        click.echo(f"App {inert(name)} asks for: {', '.join(inert(s) for s in request['scopes'])}", err=True)
        click.echo(f"  program: {inert(request['exe'] or '(unknown: the process may have ended)')}", err=True)
        click.echo(f"  process id: {request['pid']}", err=True)
        if not yes:
            if not sys.stdin.isatty():
                raise click.UsageError("no terminal to ask: check `vaultpeer apps` and pass --yes")
            if not click.confirm("Is this the program you started, and should it have this access?", default=False,
                                 err=True):
                click.echo("Not approved (it is still waiting: `vaultpeer apps deny` refuses it).", err=True)
                sys.exit(1)
        approved = client.call("app.approve", name=name, pid=request["pid"])
    if as_json:
        print_json(approved)
    else:
        click.echo(f"Approved {inert(name)}.")


@apps.command()
@click.argument("name")
@pass_context
@reports_errors
def deny(ctx: Context, name: str) -> None:
    """Refuse the waiting app NAME (it is told so)."""
    with ctx.require_daemon() as client:
        client.call("app.deny", name=name)
    click.echo(f"Denied {inert(name)}.")


@apps.command()
@click.argument("name")
@pass_context
@reports_errors
def revoke(ctx: Context, name: str) -> None:
    """End the token of the app NAME at once (its connections are refused from their next request,
    and its event subscriptions end)."""
    with ctx.require_daemon() as client:
        client.call("app.revoke", name=name)
    click.echo(f"Revoked {inert(name)}.")


def _waiting(listing: list[dict], name: str) -> dict:
    for entry in listing:
        if entry["name"] == name and entry["state"] == "pending":
            return entry
    raise NotFound(f"no app named {name!r} is waiting for an answer (see `vaultpeer apps`)")
