#!/bin/sh
# embed-sql.sh FILE...: print the store's migrations as a C initializer, one
# { version, "name", "sql" } per file. A file is NNNN_name.sql; NNNN is its schema version.
# The backend checks at start that versions run 1, 2, 3, ... without a gap.
set -eu
for f in "$@"; do
	name=$(basename "$f")
	ver=${name%%_*}
	case $ver in
	'' | *[!0-9]*)
		echo "embed-sql: $f: name does not start with a version number" >&2
		exit 1
		;;
	esac
	printf '{%d, "%s",\n' "$(expr "$ver" + 0)" "$name"
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$/\\n"/' "$f"
	printf '},\n'
done
