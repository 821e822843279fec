"""The command modules behind `darkpose config`, `darkpose train` and `darkpose test`."""
