"""Public path of the TOML readers a plugin's `configure` uses.

The code lives in `supervisor/config/fields.py`.
This path stays whatever moves behind it.
"""

from supervisor.config.fields import (
    BadValue,
    Table,
    argv_list,
    choice,
    directory_path,
    duration,
    enum_choice,
    env_table,
    existing_directory,
    integer,
    module_spec,
    number,
    positive,
    signal_name,
    string,
)

__all__ = [
    "BadValue",
    "Table",
    "argv_list",
    "choice",
    "directory_path",
    "duration",
    "enum_choice",
    "env_table",
    "existing_directory",
    "integer",
    "module_spec",
    "number",
    "positive",
    "signal_name",
    "string",
]
