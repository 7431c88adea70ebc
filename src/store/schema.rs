//! Versioned schema migrations of the state store. Each entry runs once, in order, in a
//! transaction; `PRAGMA user_version` records how far a store has come.

pub const MIGRATIONS: &[&str] = &[
    // 1: runs, outcomes, checkpoints, audit, id map, queue.
    r#"
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY,
        kind        TEXT NOT NULL,
        state       TEXT NOT NULL,
        reason      TEXT,
        started_at  TEXT NOT NULL,
        ended_at    TEXT,
        user        TEXT NOT NULL,
        config_hash TEXT NOT NULL
    );
    -- Per object of a run: the outcome counters and the checkpoint that covers them, written
    -- in the same transaction as the batch's audit rows.
    CREATE TABLE run_objects (
        run_id       INTEGER NOT NULL REFERENCES runs(id),
        object       TEXT NOT NULL,
        position     INTEGER NOT NULL,
        source_count INTEGER,
        extracted    INTEGER NOT NULL DEFAULT 0,
        created      INTEGER NOT NULL DEFAULT 0,
        updated      INTEGER NOT NULL DEFAULT 0,
        merged       INTEGER NOT NULL DEFAULT 0,
        queued       INTEGER NOT NULL DEFAULT 0,
        skipped      INTEGER NOT NULL DEFAULT 0,
        failed       INTEGER NOT NULL DEFAULT 0,
        cursor       TEXT,
        done         INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, object)
    );
    CREATE TABLE audit (
        id           INTEGER PRIMARY KEY,
        run_id       INTEGER NOT NULL,
        at           TEXT NOT NULL,
        user         TEXT NOT NULL,
        object       TEXT NOT NULL,
        source_id    TEXT NOT NULL,
        outcome      TEXT NOT NULL,
        dest_id      TEXT,
        matched_by   TEXT,
        merge_rule   TEXT,
        detail       TEXT,
        before_image TEXT
    );
    CREATE INDEX audit_record ON audit (object, source_id);
    CREATE TABLE id_map (
        object    TEXT NOT NULL,
        source_id TEXT NOT NULL,
        dest_id   TEXT NOT NULL,
        run_id    INTEGER NOT NULL,
        PRIMARY KEY (object, source_id)
    ) WITHOUT ROWID;
    CREATE TABLE queue (
        id                INTEGER PRIMARY KEY,
        object            TEXT NOT NULL,
        source_id         TEXT NOT NULL,
        origin            TEXT NOT NULL,
        run_id            INTEGER NOT NULL,
        status            TEXT NOT NULL,
        reason            TEXT NOT NULL,
        source            TEXT NOT NULL,
        mapped            TEXT NOT NULL,
        issues            TEXT NOT NULL,
        candidates        TEXT,
        corrections       TEXT NOT NULL DEFAULT '{}',
        waiting_object    TEXT,
        waiting_source_id TEXT,
        created_at        TEXT NOT NULL,
        updated_at        TEXT NOT NULL,
        UNIQUE (object, source_id)
    );
    CREATE INDEX queue_status ON queue (status, object, reason);
    CREATE INDEX queue_waiting ON queue (waiting_object, waiting_source_id) WHERE waiting_object IS NOT NULL;
    "#,
    // 2: the console pages the audit log newest first by object, outcome, or both: these keep
    // such a page instant at a million rows (an index entry ends with the row id).
    r#"
    CREATE INDEX audit_object ON audit (object);
    CREATE INDEX audit_outcome ON audit (outcome);
    CREATE INDEX audit_object_outcome ON audit (object, outcome);
    "#,
    // 3: claims — an operator editing a held record holds it for a while, so a second console on
    // the same project shows it as taken (the claim lapses by itself if its console dies).
    r#"
    ALTER TABLE queue ADD COLUMN claimed_by TEXT;
    ALTER TABLE queue ADD COLUMN claimed_at TEXT;
    "#,
    // 4: what each destination record Cutover wrote should now hold (its mapped fields, after
    // the merge rule; the latest write wins, so a record merged into twice has one image) —
    // read-back, rollback and delta compare the destination with it; and the sign-offs.
    r#"
    CREATE TABLE written (
        object  TEXT NOT NULL,
        dest_id TEXT NOT NULL,
        run_id  INTEGER NOT NULL,
        image   TEXT NOT NULL,
        -- Cutover created the record (a re-run or delta makes it follow the source); otherwise it
        -- matched an existing one, and the object's merge rule keeps deciding.
        created INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (object, dest_id)
    );
    CREATE TABLE signoffs (
        id          INTEGER PRIMARY KEY,
        at          TEXT NOT NULL,
        user        TEXT NOT NULL,
        notes       TEXT NOT NULL,
        report_hash TEXT NOT NULL,
        verdict     TEXT NOT NULL,
        last_run_id INTEGER,
        accepted    TEXT NOT NULL,
        report      TEXT NOT NULL
    );
    "#,
    // 5: delta runs — a hash of each written record's source values (what changed since?), and
    // per object of a run the highest modified time it read (where the next delta starts).
    r#"
    ALTER TABLE id_map ADD COLUMN source_hash TEXT;
    ALTER TABLE run_objects ADD COLUMN high_water TEXT;
    "#,
    // 6: integrity. A source id read twice in one run is two physical records: audit and queue
    // tell them apart by occurrence (the queue's key widens, so the table is rebuilt). Audit rows
    // say where each record came from and what it held (a hash). Records found with nothing to
    // change are counted as unchanged. Several source records may feed one destination record:
    // each id-map entry says whether it is that record's survivor or a member merged into it
    // (and an index finds a record's members). A rollback names the run it undoes and a reprocess
    // keeps the queue items it was given, so either resumes after a kill. The destination's own count
    // of each object before the first run is kept, for reconciliation's count witness.
    r#"
    ALTER TABLE audit ADD COLUMN occurrence INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE audit ADD COLUMN origin TEXT;
    ALTER TABLE audit ADD COLUMN source_hash TEXT;
    ALTER TABLE run_objects ADD COLUMN unchanged INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE id_map ADD COLUMN role TEXT NOT NULL DEFAULT 'survivor';
    CREATE INDEX id_map_dest ON id_map (object, dest_id);
    CREATE TABLE queue_new (
        id                INTEGER PRIMARY KEY,
        object            TEXT NOT NULL,
        source_id         TEXT NOT NULL,
        occurrence        INTEGER NOT NULL DEFAULT 1,
        origin            TEXT NOT NULL,
        run_id            INTEGER NOT NULL,
        status            TEXT NOT NULL,
        reason            TEXT NOT NULL,
        source            TEXT NOT NULL,
        mapped            TEXT NOT NULL,
        issues            TEXT NOT NULL,
        candidates        TEXT,
        corrections       TEXT NOT NULL DEFAULT '{}',
        waiting_object    TEXT,
        waiting_source_id TEXT,
        created_at        TEXT NOT NULL,
        updated_at        TEXT NOT NULL,
        claimed_by        TEXT,
        claimed_at        TEXT,
        UNIQUE (object, source_id, occurrence)
    );
    INSERT INTO queue_new (id, object, source_id, origin, run_id, status, reason, source, mapped, issues,
                           candidates, corrections, waiting_object, waiting_source_id, created_at, updated_at,
                           claimed_by, claimed_at)
        SELECT id, object, source_id, origin, run_id, status, reason, source, mapped, issues, candidates,
               corrections, waiting_object, waiting_source_id, created_at, updated_at, claimed_by, claimed_at
        FROM queue;
    DROP TABLE queue;
    ALTER TABLE queue_new RENAME TO queue;
    CREATE INDEX queue_status ON queue (status, object, reason);
    CREATE INDEX queue_waiting ON queue (waiting_object, waiting_source_id) WHERE waiting_object IS NOT NULL;
    ALTER TABLE runs ADD COLUMN of_run INTEGER;
    ALTER TABLE runs ADD COLUMN mode TEXT;
    CREATE TABLE run_items (
        run_id   INTEGER NOT NULL,
        queue_id INTEGER NOT NULL,
        PRIMARY KEY (run_id, queue_id)
    ) WITHOUT ROWID;
    CREATE TABLE destination_baseline (
        dest_object TEXT PRIMARY KEY,
        -- the destination's own count, and how many of those records Cutover had created then
        count       INTEGER NOT NULL,
        created     INTEGER NOT NULL,
        run_id      INTEGER NOT NULL,
        at          TEXT NOT NULL
    );
    "#,
    // 7: an operator's skip is a decision like a correction: every later run keeps it while the
    // source row is unchanged, with the reason the operator gave.
    r#"
    ALTER TABLE queue ADD COLUMN skip_reason TEXT;
    "#,
    // 8: the warning tier — what a record was written with that someone should verify (a phone
    // number not assigned in its region), kept with its audit row as a JSON list of issues.
    r#"
    ALTER TABLE audit ADD COLUMN warnings TEXT;
    "#,
    // 9: record linkage — the model each run of an object linked by (a resumed run and a reprocess
    // weigh pairs alike), and each audit row's match probability when linkage decided it.
    r#"
    CREATE TABLE linkage_models (
        run_id INTEGER NOT NULL,
        object TEXT NOT NULL,
        model  TEXT NOT NULL,
        PRIMARY KEY (run_id, object)
    ) WITHOUT ROWID;
    ALTER TABLE audit ADD COLUMN confidence REAL;
    "#,
    // 10: undo — every correction keeps what the field held before it, so an operator can take a
    // (bulk) correction back; `undone_at` marks the ones taken back.
    r#"
    CREATE TABLE correction_history (
        id         INTEGER PRIMARY KEY,
        queue_id   INTEGER NOT NULL,
        field      TEXT NOT NULL,
        had_before INTEGER NOT NULL,
        before     TEXT,
        after      TEXT,
        at         TEXT NOT NULL,
        user       TEXT NOT NULL,
        undone_at  TEXT
    );
    CREATE INDEX correction_history_item ON correction_history (queue_id, id);
    "#,
    // 11: the console works a queue of half a million by indexes, never a scan: held records in
    // id order, by object and reason, and by the field and value of their first issue (the
    // groups an operator clears at once). Partial: only what is still held.
    r#"
    CREATE INDEX queue_pending_id ON queue (id) WHERE status IN ('open', 'fixed', 'claimed');
    CREATE INDEX queue_pending_reason ON queue (object, reason, id) WHERE status IN ('open', 'fixed', 'claimed');
    CREATE INDEX queue_issue ON queue (object, reason, json_extract(issues, '$[0].field'),
        json_extract(issues, '$[0].value'), id) WHERE status IN ('open', 'fixed', 'claimed');
    "#,
    // 12: every audit row paid for four indexes. A page by object alone, or by outcome alone, is
    // now a merge of (object, outcome) arms, each read newest first from the one index that
    // remains for them (`audit_page`), so these two were only a cost (about 1 s a million rows).
    r#"
    DROP INDEX audit_object;
    DROP INDEX audit_outcome;
    "#,
];
