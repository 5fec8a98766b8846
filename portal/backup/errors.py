"""The one error backup and restore raise: its message says what is wrong and what to do."""


class BackupError(Exception):
    @property
    def message(self) -> str:
        return str(self)
