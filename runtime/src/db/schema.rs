//! Table definitions compatible with Kamailio's schema (same table and column names), so a
//! database created by ksr can be used by Kamailio and the other way round. Tables are
//! created on first use.

pub struct Column {
    pub name: &'static str,
    /// SQL type and constraints as SQLite accepts them.
    pub decl: &'static str,
}

pub struct Table {
    pub name: &'static str,
    /// Version recorded in the `version` table, as Kamailio 5.6 expects.
    pub version: i64,
    pub columns: &'static [Column],
    /// Extra statements (indexes, unique constraints).
    pub indexes: &'static [&'static str],
}

macro_rules! cols {
    ($($name:literal => $decl:literal),* $(,)?) => {
        &[$(Column { name: $name, decl: $decl }),*]
    };
}

pub static TABLES: &[Table] = &[
    Table {
        name: "version",
        version: 1,
        columns: cols![
            "id" => "INTEGER PRIMARY KEY NOT NULL",
            "table_name" => "VARCHAR(32) NOT NULL UNIQUE",
            "table_version" => "INTEGER DEFAULT 0 NOT NULL",
        ],
        indexes: &[],
    },
    Table {
        name: "subscriber",
        version: 7,
        columns: cols![
            "id" => "INTEGER PRIMARY KEY NOT NULL",
            "username" => "VARCHAR(64) DEFAULT '' NOT NULL",
            "domain" => "VARCHAR(64) DEFAULT '' NOT NULL",
            "password" => "VARCHAR(64) DEFAULT '' NOT NULL",
            "ha1" => "VARCHAR(128) DEFAULT '' NOT NULL",
            "ha1b" => "VARCHAR(128) DEFAULT '' NOT NULL",
        ],
        indexes: &[
            "CREATE UNIQUE INDEX IF NOT EXISTS subscriber_account_idx ON subscriber (username, domain)",
            "CREATE INDEX IF NOT EXISTS subscriber_username_idx ON subscriber (username)",
        ],
    },
    Table {
        name: "location",
        version: 9,
        columns: cols![
            "id" => "INTEGER PRIMARY KEY NOT NULL",
            "ruid" => "VARCHAR(64) DEFAULT '' NOT NULL",
            "username" => "VARCHAR(64) DEFAULT '' NOT NULL",
            "domain" => "VARCHAR(64) DEFAULT NULL",
            "contact" => "VARCHAR(512) DEFAULT '' NOT NULL",
            "received" => "VARCHAR(128) DEFAULT NULL",
            "path" => "VARCHAR(512) DEFAULT NULL",
            "expires" => "TIMESTAMP WITHOUT TIME ZONE DEFAULT '2030-05-28 21:32:15' NOT NULL",
            "q" => "REAL DEFAULT 1.0 NOT NULL",
            "callid" => "VARCHAR(255) DEFAULT 'Default-Call-ID' NOT NULL",
            "cseq" => "INTEGER DEFAULT 1 NOT NULL",
            "last_modified" => "TIMESTAMP WITHOUT TIME ZONE DEFAULT '2000-01-01 00:00:01' NOT NULL",
            "flags" => "INTEGER DEFAULT 0 NOT NULL",
            "cflags" => "INTEGER DEFAULT 0 NOT NULL",
            "user_agent" => "VARCHAR(255) DEFAULT '' NOT NULL",
            "socket" => "VARCHAR(64) DEFAULT NULL",
            "methods" => "INTEGER DEFAULT NULL",
            "instance" => "VARCHAR(255) DEFAULT NULL",
            "reg_id" => "INTEGER DEFAULT 0 NOT NULL",
            "server_id" => "INTEGER DEFAULT 0 NOT NULL",
            "connection_id" => "INTEGER DEFAULT 0 NOT NULL",
            "keepalive" => "INTEGER DEFAULT 0 NOT NULL",
            "partition" => "INTEGER DEFAULT 0 NOT NULL",
        ],
        indexes: &[
            "CREATE UNIQUE INDEX IF NOT EXISTS location_ruid_idx ON location (ruid)",
            "CREATE INDEX IF NOT EXISTS location_account_contact_idx ON location (username, domain, contact)",
            "CREATE INDEX IF NOT EXISTS location_expires_idx ON location (expires)",
            "CREATE INDEX IF NOT EXISTS location_tcpcon_idx ON location (connection_id)",
            "CREATE INDEX IF NOT EXISTS location_connection_idx ON location (server_id, connection_id)",
        ],
    },
    Table {
        name: "location_attrs",
        version: 1,
        columns: cols![
            "id" => "INTEGER PRIMARY KEY NOT NULL",
            "ruid" => "VARCHAR(64) DEFAULT '' NOT NULL",
            "username" => "VARCHAR(64) DEFAULT '' NOT NULL",
            "domain" => "VARCHAR(64) DEFAULT NULL",
            "aname" => "VARCHAR(64) DEFAULT '' NOT NULL",
            "atype" => "INTEGER DEFAULT 0 NOT NULL",
            "avalue" => "VARCHAR(512) DEFAULT '' NOT NULL",
            "last_modified" => "TIMESTAMP WITHOUT TIME ZONE DEFAULT '2000-01-01 00:00:01' NOT NULL",
        ],
        indexes: &[
            "CREATE INDEX IF NOT EXISTS location_attrs_account_record_idx ON location_attrs (username, domain, ruid)",
            "CREATE INDEX IF NOT EXISTS location_attrs_last_modified_idx ON location_attrs (last_modified)",
        ],
    },
    Table {
        name: "acc",
        version: 5,
        columns: cols![
            "id" => "INTEGER PRIMARY KEY NOT NULL",
            "method" => "VARCHAR(16) DEFAULT '' NOT NULL",
            "from_tag" => "VARCHAR(128) DEFAULT '' NOT NULL",
            "to_tag" => "VARCHAR(128) DEFAULT '' NOT NULL",
            "callid" => "VARCHAR(255) DEFAULT '' NOT NULL",
            "sip_code" => "VARCHAR(3) DEFAULT '' NOT NULL",
            "sip_reason" => "VARCHAR(128) DEFAULT '' NOT NULL",
            "time" => "TIMESTAMP WITHOUT TIME ZONE NOT NULL",
        ],
        indexes: &["CREATE INDEX IF NOT EXISTS acc_callid_idx ON acc (callid)"],
    },
    Table {
        name: "missed_calls",
        version: 4,
        columns: cols![
            "id" => "INTEGER PRIMARY KEY NOT NULL",
            "method" => "VARCHAR(16) DEFAULT '' NOT NULL",
            "from_tag" => "VARCHAR(128) DEFAULT '' NOT NULL",
            "to_tag" => "VARCHAR(128) DEFAULT '' NOT NULL",
            "callid" => "VARCHAR(255) DEFAULT '' NOT NULL",
            "sip_code" => "VARCHAR(3) DEFAULT '' NOT NULL",
            "sip_reason" => "VARCHAR(128) DEFAULT '' NOT NULL",
            "time" => "TIMESTAMP WITHOUT TIME ZONE NOT NULL",
        ],
        indexes: &["CREATE INDEX IF NOT EXISTS missed_calls_callid_idx ON missed_calls (callid)"],
    },
    Table {
        name: "address",
        version: 6,
        columns: cols![
            "id" => "INTEGER PRIMARY KEY NOT NULL",
            "grp" => "INTEGER DEFAULT 1 NOT NULL",
            "ip_addr" => "VARCHAR(50) NOT NULL",
            "mask" => "INTEGER DEFAULT 32 NOT NULL",
            "port" => "SMALLINT DEFAULT 0 NOT NULL",
            "tag" => "VARCHAR(64)",
        ],
        indexes: &[],
    },
    Table {
        name: "trusted",
        version: 6,
        columns: cols![
            "id" => "INTEGER PRIMARY KEY NOT NULL",
            "src_ip" => "VARCHAR(50) NOT NULL",
            "proto" => "VARCHAR(4) NOT NULL",
            "from_pattern" => "VARCHAR(64) DEFAULT NULL",
            "ruri_pattern" => "VARCHAR(64) DEFAULT NULL",
            "tag" => "VARCHAR(64)",
            "priority" => "INTEGER DEFAULT 0 NOT NULL",
        ],
        indexes: &["CREATE INDEX IF NOT EXISTS trusted_peer_idx ON trusted (src_ip)"],
    },
    Table {
        name: "dispatcher",
        version: 4,
        columns: cols![
            "id" => "INTEGER PRIMARY KEY NOT NULL",
            "setid" => "INTEGER DEFAULT 0 NOT NULL",
            "destination" => "VARCHAR(192) DEFAULT '' NOT NULL",
            "flags" => "INTEGER DEFAULT 0 NOT NULL",
            "priority" => "INTEGER DEFAULT 0 NOT NULL",
            "attrs" => "VARCHAR(128) DEFAULT '' NOT NULL",
            "description" => "VARCHAR(64) DEFAULT '' NOT NULL",
        ],
        indexes: &[],
    },
    Table {
        name: "htable",
        version: 2,
        columns: cols![
            "id" => "INTEGER PRIMARY KEY NOT NULL",
            "key_name" => "VARCHAR(64) DEFAULT '' NOT NULL",
            "key_type" => "INTEGER DEFAULT 0 NOT NULL",
            "value_type" => "INTEGER DEFAULT 0 NOT NULL",
            "key_value" => "VARCHAR(128) DEFAULT '' NOT NULL",
            "expires" => "INTEGER DEFAULT 0 NOT NULL",
        ],
        indexes: &[],
    },
    Table {
        name: "domain",
        version: 2,
        columns: cols![
            "id" => "INTEGER PRIMARY KEY NOT NULL",
            "domain" => "VARCHAR(64) NOT NULL",
            "did" => "VARCHAR(64) DEFAULT NULL",
            "last_modified" => "TIMESTAMP WITHOUT TIME ZONE DEFAULT '2000-01-01 00:00:01' NOT NULL",
        ],
        indexes: &["CREATE UNIQUE INDEX IF NOT EXISTS domain_domain_idx ON domain (domain)"],
    },
    Table {
        name: "domain_attrs",
        version: 1,
        columns: cols![
            "id" => "INTEGER PRIMARY KEY NOT NULL",
            "did" => "VARCHAR(64) NOT NULL",
            "name" => "VARCHAR(32) NOT NULL",
            "type" => "INTEGER NOT NULL",
            "value" => "VARCHAR(255) NOT NULL",
            "last_modified" => "TIMESTAMP WITHOUT TIME ZONE DEFAULT '2000-01-01 00:00:01' NOT NULL",
        ],
        indexes: &[
            "CREATE INDEX IF NOT EXISTS domain_attrs_domain_attrs_idx ON domain_attrs (did, name)",
        ],
    },
    Table {
        name: "dbaliases",
        version: 1,
        columns: cols![
            "id" => "INTEGER PRIMARY KEY NOT NULL",
            "alias_username" => "VARCHAR(64) DEFAULT '' NOT NULL",
            "alias_domain" => "VARCHAR(64) DEFAULT '' NOT NULL",
            "username" => "VARCHAR(64) DEFAULT '' NOT NULL",
            "domain" => "VARCHAR(64) DEFAULT '' NOT NULL",
        ],
        indexes: &[
            "CREATE INDEX IF NOT EXISTS dbaliases_alias_user_idx ON dbaliases (alias_username)",
            "CREATE INDEX IF NOT EXISTS dbaliases_alias_idx ON dbaliases (alias_username, alias_domain)",
            "CREATE INDEX IF NOT EXISTS dbaliases_target_idx ON dbaliases (username, domain)",
        ],
    },
    Table {
        name: "speed_dial",
        version: 2,
        columns: cols![
            "id" => "INTEGER PRIMARY KEY NOT NULL",
            "username" => "VARCHAR(64) DEFAULT '' NOT NULL",
            "domain" => "VARCHAR(64) DEFAULT '' NOT NULL",
            "sd_username" => "VARCHAR(64) DEFAULT '' NOT NULL",
            "sd_domain" => "VARCHAR(64) DEFAULT '' NOT NULL",
            "new_uri" => "VARCHAR(255) DEFAULT '' NOT NULL",
            "fname" => "VARCHAR(64) DEFAULT '' NOT NULL",
            "lname" => "VARCHAR(64) DEFAULT '' NOT NULL",
            "description" => "VARCHAR(64) DEFAULT '' NOT NULL",
        ],
        indexes: &[
            "CREATE UNIQUE INDEX IF NOT EXISTS speed_dial_speed_dial_idx ON speed_dial (username, domain, sd_domain, sd_username)",
        ],
    },
];

pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

impl Table {
    /// `CREATE TABLE` for this table plus `extra` text columns (e.g. acc `db_extra`).
    pub fn create_sql(&self, extra: &[&str]) -> String {
        let mut cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("    {} {}", c.name, c.decl))
            .collect();
        for e in extra {
            if !self.columns.iter().any(|c| c.name == *e) {
                cols.push(format!("    {e} VARCHAR(128) DEFAULT '' NOT NULL"));
            }
        }
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n{}\n)",
            self.name,
            cols.join(",\n")
        )
    }
}
