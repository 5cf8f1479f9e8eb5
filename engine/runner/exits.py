"""The exit codes of ``engine run``: one per kind of failure, chosen by the API's error code, so
a script can tell a wrong password from a SaaS that is down or a storage URL that is refused."""

from __future__ import annotations

from engine.errors import Code

EXIT_CODES = """\b
Exit codes:
  0  done
  1  internal error, a hook failed, or a damaged backup (as engine backups verify)
  2  usage: a bad argument, option, item, settings file or ENGINE_* setting
  3  incomplete or not a backup: no manifest.json at --from
  4  storage not reachable, or the URL not allowed (ENGINE_STORAGE_ALLOW)
  5  the settings break the module's auth form (INVALID_SETTINGS)
  6  the SaaS refused the credentials (SAAS_AUTH_FAILED)
  7  the SaaS failed or answered nonsense (SAAS_ERROR, PAGINATION_STOPPED)
  8  the task finished, but some items failed (each error printed)
  130  interrupted (Ctrl-C): a task's record keeps its progress"""

PARTLY_DONE = 8
INTERRUPTED = 130

BY_CODE: dict[Code, int] = {
    Code.BAD_REQUEST: 2,
    Code.BAD_CTX: 2,
    Code.NOT_FOUND: 2,
    Code.UNAUTHORIZED: 2,
    Code.BODY_TOO_LARGE: 2,
    Code.BACKUP_EXISTS: 2,
    Code.NOT_TEXT: 1,
    Code.INCOMPLETE_BACKUP: 3,
    Code.BACKUP_DAMAGED: 1,
    Code.CHECKSUM_MISMATCH: 1,
    Code.STORAGE_ERROR: 4,
    Code.STORAGE_NOT_ALLOWED: 4,
    Code.UNAVAILABLE: 4,
    Code.INVALID_SETTINGS: 5,
    Code.SAAS_AUTH_FAILED: 6,
    Code.SAAS_ERROR: 7,
    Code.PAGINATION_STOPPED: 7,
    Code.HOOK_FAILED: 1,
    Code.INTERNAL: 1,
}


def exit_code(code: str) -> int:
    """The exit code for an API error code (1 for one this table does not know)."""
    try:
        return BY_CODE[Code(code)]
    except ValueError:
        return 1
