#!/bin/sh
# Create (if missing) the SQLite database used by openser-cfg/kamailio.cfg and
# add or update subscribers, trusted gateways and trunks.
#   make-db.sh DBPATH [user password]...
#   make-db.sh DBPATH --trusted IP[:PORT] --trunk IP[:PORT] [user password]...
# --trusted: a gateway whose calls Kamailio takes without credentials (group 1);
# --trunk: where a bridge's legs may go besides local users (group 2).
# Domain of the subscribers: $SIP_DOMAIN (default switchboard.local); with
# modparam("auth_db","use_domain",0) only the username is matched.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 DBPATH [--trusted IP[:PORT]]... [--trunk IP[:PORT]]... [user password]..." >&2; exit 2; }
DB=$1; shift
DOMAIN=${SIP_DOMAIN:-switchboard.local}
SQLDIR=${KAMAILIO_SQL_DIR:-/usr/share/kamailio/db_sqlite}
command -v sqlite3 >/dev/null || { echo "sqlite3 is required (apt-get install sqlite3)" >&2; exit 1; }

if [ ! -s "$DB" ]; then
    if [ -r "$SQLDIR/standard-create.sql" ]; then
        cat "$SQLDIR/standard-create.sql" "$SQLDIR/auth_db-create.sql" \
            "$SQLDIR/permissions-create.sql" | sqlite3 "$DB"
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
SQL
    fi
fi

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
    u=$(q "$1"); p=$(q "$2")
    ha1=$(printf "%s:%s:%s" "$1" "$DOMAIN" "$2" | md5sum | cut -d' ' -f1)
    sqlite3 "$DB" "INSERT INTO subscriber (username, domain, password, ha1) VALUES ('$u', '$(q "$DOMAIN")', '$p', '$ha1')
        ON CONFLICT(username, domain) DO UPDATE SET password=excluded.password, ha1=excluded.ha1;"
    shift 2
done
