#!/bin/sh
# Create (if missing) or upgrade the SQLite database used by openser-cfg/kamailio.cfg and
# add or update subscribers, trusted gateways and trunks.
#   make-db.sh DBPATH [user password]...
#   make-db.sh DBPATH --trusted IP[:PORT] --trunk IP[:PORT] [user password]...
# --trusted: a gateway whose calls Kamailio takes without credentials (group 1);
# --trunk: where a bridge's legs may go besides local users (group 2).
# Domain of the subscribers: $SIP_DOMAIN (default switchboard.local); with
# modparam("auth_db","use_domain",0) only the username is matched.
# Passwords are stored only as ha1/ha1b (the cfg has calculate_ha1 off) and skip the
# password policy: switchboard-gateway's sip-accounts (CLI and REST) is the way for real accounts.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 DBPATH [--trusted IP[:PORT]]... [--trunk IP[:PORT]]... [user password]..." >&2; exit 2; }
DB=$1; shift
DOMAIN=${SIP_DOMAIN:-switchboard.local}
SQLDIR=${KAMAILIO_SQL_DIR:-/usr/share/kamailio/db_sqlite}
command -v sqlite3 >/dev/null || { echo "sqlite3 is required (apt-get install sqlite3)" >&2; exit 1; }

if [ ! -s "$DB" ]; then
    if [ -r "$SQLDIR/standard-create.sql" ]; then
        cat "$SQLDIR/standard-create.sql" "$SQLDIR/auth_db-create.sql" \
            "$SQLDIR/permissions-create.sql" "$SQLDIR/alias_db-create.sql" | sqlite3 "$DB"
    else   # minimal schema, same as Kamailio 5.6's shipped files
        sqlite3 "$DB" <<'SQL'
CREATE TABLE version (id INTEGER PRIMARY KEY NOT NULL, table_name VARCHAR(32) NOT NULL,
  table_version INTEGER DEFAULT 0 NOT NULL, CONSTRAINT version_table_name_idx UNIQUE (table_name));
INSERT INTO version (table_name, table_version) VALUES ('version','1');
CREATE TABLE subscriber (id INTEGER PRIMARY KEY NOT NULL, username VARCHAR(64) DEFAULT '' NOT NULL,
  domain VARCHAR(64) DEFAULT '' NOT NULL, password VARCHAR(64) DEFAULT '' NOT NULL,
  ha1 VARCHAR(128) DEFAULT '' NOT NULL, ha1b VARCHAR(128) DEFAULT '' NOT NULL,
  CONSTRAINT subscriber_account_idx UNIQUE (username, domain));
INSERT INTO version (table_name, table_version) VALUES ('subscriber','7');
CREATE TABLE trusted (id INTEGER PRIMARY KEY NOT NULL, src_ip VARCHAR(50) NOT NULL, proto VARCHAR(4) NOT NULL,
  from_pattern VARCHAR(64) DEFAULT NULL, ruri_pattern VARCHAR(64) DEFAULT NULL, tag VARCHAR(64),
  priority INTEGER DEFAULT 0 NOT NULL);
INSERT INTO version (table_name, table_version) VALUES ('trusted','6');
CREATE TABLE address (id INTEGER PRIMARY KEY NOT NULL, grp INTEGER DEFAULT 1 NOT NULL,
  ip_addr VARCHAR(50) NOT NULL, mask INTEGER DEFAULT 32 NOT NULL, port SMALLINT DEFAULT 0 NOT NULL, tag VARCHAR(64));
INSERT INTO version (table_name, table_version) VALUES ('address','6');
CREATE TABLE dbaliases (id INTEGER PRIMARY KEY NOT NULL, alias_username VARCHAR(64) DEFAULT '' NOT NULL,
  alias_domain VARCHAR(64) DEFAULT '' NOT NULL, username VARCHAR(64) DEFAULT '' NOT NULL,
  domain VARCHAR(64) DEFAULT '' NOT NULL);
CREATE INDEX dbaliases_alias_idx ON dbaliases (alias_username, alias_domain);
INSERT INTO version (table_name, table_version) VALUES ('dbaliases','1');
SQL
    fi
fi

# Upgrade (also a database made by an older make-db.sh): what openser-cfg and the gateway's SIP
# accounts need besides Kamailio's schema. WAL: the gateway writes while Kamailio reads, and
# Kamailio's db_sqlite has no busy timeout, so a reader must never wait for a writer.
has_column() { sqlite3 "$DB" "SELECT 1 FROM pragma_table_info('subscriber') WHERE name = '$1';" | grep -q 1; }
has_column disabled || sqlite3 "$DB" "ALTER TABLE subscriber ADD COLUMN disabled INTEGER DEFAULT 0 NOT NULL;"
has_column display_name || sqlite3 "$DB" "ALTER TABLE subscriber ADD COLUMN display_name VARCHAR(128) DEFAULT '' NOT NULL;"
has_column billing_account || sqlite3 "$DB" "ALTER TABLE subscriber ADD COLUMN billing_account VARCHAR(64) DEFAULT '' NOT NULL;"
if [ -z "$(sqlite3 "$DB" "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'dbaliases';")" ]; then
    if [ -r "$SQLDIR/alias_db-create.sql" ]; then
        sqlite3 "$DB" <"$SQLDIR/alias_db-create.sql"
    else
        sqlite3 "$DB" "CREATE TABLE dbaliases (id INTEGER PRIMARY KEY NOT NULL, alias_username VARCHAR(64) DEFAULT '' NOT NULL,
            alias_domain VARCHAR(64) DEFAULT '' NOT NULL, username VARCHAR(64) DEFAULT '' NOT NULL, domain VARCHAR(64) DEFAULT '' NOT NULL);
            INSERT INTO version (table_name, table_version) VALUES ('dbaliases','1');"
    fi
fi
sqlite3 "$DB" "PRAGMA journal_mode = WAL;" >/dev/null

q() { printf "%s" "$1" | sed "s/'/''/g"; }
while [ $# -gt 0 ]; do
    if [ "$1" = "--trusted" ] || [ "$1" = "--trunk" ]; then
        [ $# -ge 2 ] || { echo "$1 needs IP[:PORT]" >&2; exit 2; }
        ip=${2%%:*}; port=0; case $2 in *:*) port=${2##*:};; esac
        case $port in ''|*[!0-9]*) echo "$1 $2: the port must be a number" >&2; exit 2;; esac
        if [ "$1" = "--trusted" ]; then grp=1; tag=gateway; else grp=2; tag=trunk; fi
        sqlite3 "$DB" "INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES ($grp, '$(q "$ip")', 32, $port, '$tag');"
        shift 2; continue
    fi
    [ $# -ge 2 ] || { echo "user '$1' has no password" >&2; exit 2; }
    u=$(q "$1")
    ha1=$(printf "%s:%s:%s" "$1" "$DOMAIN" "$2" | md5sum | cut -d' ' -f1)
    ha1b=$(printf "%s@%s:%s:%s" "$1" "$DOMAIN" "$DOMAIN" "$2" | md5sum | cut -d' ' -f1)
    sqlite3 "$DB" "INSERT INTO subscriber (username, domain, password, ha1, ha1b) VALUES ('$u', '$(q "$DOMAIN")', '', '$ha1', '$ha1b')
        ON CONFLICT(username, domain) DO UPDATE SET password='', ha1=excluded.ha1, ha1b=excluded.ha1b;"
    shift 2
done
