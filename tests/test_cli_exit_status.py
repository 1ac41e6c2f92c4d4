"""The CLI's exit statuses come from each error's stable name (so the CLI need not import every
module that defines an error class to map them): the same statuses as a table of classes gives."""

import vaultpeer.cli  # noqa: F401 - every command module, and with them every error class
from vaultpeer import clipboard
from vaultpeer.cli import app
from vaultpeer.core import errors
from vaultpeer.core.merge import EDIT_SURVIVED_DELETE
from vaultpeer.core.pairing import PairingError
from vaultpeer.core.secret_ref import ReferenceInConflict
from vaultpeer.io import daemon  # noqa: F401 - loads the io error classes too
from vaultpeer.service.vault import Conflict

#: The statuses docs/cli.md gives each kind of error, by class (the most specific listed class wins).
BY_CLASS = {
    errors.WrongPassword: app.EXIT_WRONG_PASSWORD,
    errors.WrongRecoveryKey: app.EXIT_WRONG_PASSWORD,
    errors.NotFound: app.EXIT_NOT_FOUND,
    errors.Ambiguous: app.EXIT_AMBIGUOUS,
    errors.IntegrityError: app.EXIT_INTEGRITY,
    errors.NoVault: app.EXIT_NO_VAULT,
    errors.InvalidInput: app.EXIT_USAGE,
    Conflict: app.EXIT_CONFLICT,
    ReferenceInConflict: app.EXIT_CONFLICT,
    errors.VaultLocked: app.EXIT_LOCKED,
    PairingError: app.EXIT_PAIRING,
    clipboard.NoClipboard: app.EXIT_NO_CLIPBOARD,
    errors.Forbidden: app.EXIT_FORBIDDEN,
}


def subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | subclasses(sub)
    return found


def test_every_error_class_gets_the_status_of_its_class():
    for cls in subclasses(errors.VaultpeerError):
        listed = [klass for klass in cls.__mro__ if klass in BY_CLASS]
        expected = BY_CLASS[listed[0]] if listed else app._EXIT_BY_NAME.get(cls.__dict__.get("code"), app.EXIT_ERROR)
        exc = cls.__new__(cls)
        assert app.exit_status(exc) == expected, cls


def test_every_merge_flag_is_explained():
    assert set(app.FLAG_EXPLANATIONS) == {EDIT_SURVIVED_DELETE}
