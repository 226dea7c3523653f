"""The database schema (SQLAlchemy Core), the single source for Alembic migrations.

The message store keeps raw bytes exactly as received (evidence, replay) next to the parsed envelope;
history and audit are append-only tables keyed by message id. The outbox table doubles as the
embedded broker's queue: what is stored and what is queued commit in one transaction.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Timestamp = sa.DateTime(timezone=True)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("sender", sa.String(64), nullable=False),
    sa.Column("message_uuid", sa.String(36), nullable=False),
    sa.Column("message_type", sa.String(64), nullable=False),
    sa.Column("version", sa.String(16), nullable=False),
    sa.Column("format", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("correlation_id", sa.String(64), nullable=False),
    sa.Column("reference_uuid", sa.String(36)),
    sa.Column("test", sa.Boolean, nullable=False, default=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("raw", sa.LargeBinary),  # NULL once the retention period deleted it
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.UniqueConstraint("sender", "message_uuid"),
    # (status, id): "are these messages still received?" is answered from the index alone
    sa.Index(None, "status", "id"),
    # controlling (hub/chain/controlling.py): messages, refusals and duplicates per sender in a period, from the index alone
    sa.Index(None, "created_at", "sender", "status", "test", "id"),
    # the console's search (hub/store/search.py): a partner's or a type's messages, newest first, one
    # page walked off the index; a time range is an id range (ids are ULIDs)
    sa.Index(None, "sender", "id"),
    sa.Index(None, "message_type", "id"),
)

#: the history events that are an outcome of a message: its receipt, where it went, how it ended
#: (hub/store/flows.py counts them); written out, because SQLite uses a partial index only for a
#: query that repeats its condition literally
OUTCOME_EVENTS = ("received", "routed", "rejected", "duplicate", "delivered", "dead")
OUTCOME_EVENTS_SQL = "event IN (" + ", ".join(f"'{e}'" for e in OUTCOME_EVENTS) + ")"

message_events = sa.Table(
    "message_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(26), nullable=False),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("stage", sa.String(32), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("detail", sa.JSON),
    sa.Index(None, "message_id", "id"),
    # the outcomes the console's flows count (hub/store/flows.py), in time order: only those events
    # are in the index, so the pipeline pays for one or two entries per message, not for every event
    sa.Index(
        "ix_message_events_outcomes", "at", "event", "message_id",
        sqlite_where=sa.text(OUTCOME_EVENTS_SQL), postgresql_where=sa.text(OUTCOME_EVENTS_SQL),
    ),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("message_id", sa.String(26), nullable=False),
    sa.Column("recipient", sa.String(64), nullable=False),
    sa.Column("message_type", sa.String(64), nullable=False),
    sa.Column("version", sa.String(16), nullable=False),
    sa.Column("format", sa.String(32), nullable=False),
    sa.Column("content_type", sa.String(64), nullable=False),
    sa.Column("purpose", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | acknowledged | dead
    sa.Column("body", sa.LargeBinary),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("acked_at", Timestamp),
    sa.UniqueConstraint("message_id", "recipient", "message_type"),
    sa.Index(None, "recipient", "status", "id"),
    sa.Index(None, "recipient", "message_id"),  # the console's search: the messages delivered to a partner, newest first
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("available_at", sa.Float, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", Timestamp, nullable=False),
    #: the failure of the item's last attempt (hub.errors.describe), for its dead letter
    sa.Column("last_error", sa.Text),
    # (queue, id): a claim walks the queue in id order and stops at its batch (no sort of the backlog)
    sa.Index(None, "queue", "id"),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("message_id", sa.String(26)),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("replayed_at", Timestamp),
    sa.Index(None, "message_id"),  # replay finds a message's dead letters
    sa.Index(None, "at"),  # the console's list, newest first, and its time range
)

partner_tokens = sa.Table(
    "partner_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("partner_id", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("revoked_at", Timestamp),
    sa.Column("expires_at", Timestamp),  # NULL: issued before tokens expired (migration 0009)
    sa.Index(None, "partner_id"),
)

cases = sa.Table(
    "cases",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),  # the responsible Jobcenter / zkT
    sa.Column("customer_number", sa.String(16), nullable=False),
    sa.Column("bg_number", sa.String(16)),
    sa.Column("person_id", sa.String(26)),  # the master person index's person, where resolved
    sa.Column("created_at", Timestamp, nullable=False),
    # the chain's status as steering rules set it (open | integrated | closed ...), hub/chain
    sa.Column("status", sa.String(24), nullable=False, server_default="open"),
    sa.Column("closed_at", Timestamp),
    sa.UniqueConstraint("owner", "customer_number"),
)

case_members = sa.Table(
    "case_members",
    metadata,
    sa.Column("case_id", sa.String(26), nullable=False),
    sa.Column("partner_id", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("local_ref", sa.String(40), nullable=False),  # the partner's own id for the case
    sa.Column("joined_at", Timestamp, nullable=False),
    sa.PrimaryKeyConstraint("case_id", "partner_id"),
    sa.UniqueConstraint("partner_id", "local_ref"),
    sa.Index(None, "local_ref"),  # a reference alone, whoever's it is (the console's case search)
)

#: the case a message concerns, as the pipeline found it (hub/pipeline/case_chain.py): the console
#: finds a case's messages by any member's reference through it
message_cases = sa.Table(
    "message_cases",
    metadata,
    sa.Column("case_id", sa.String(26), nullable=False),
    sa.Column("message_id", sa.String(26), nullable=False),
    sa.PrimaryKeyConstraint("case_id", "message_id"),
)

case_measures = sa.Table(
    "case_measures",
    metadata,
    sa.Column("case_id", sa.String(26), nullable=False),
    sa.Column("partner_id", sa.String(64), nullable=False),
    sa.Column("measure_number", sa.String(40), nullable=False),  # the measure this partner runs for the case
    sa.Column("joined_at", Timestamp, nullable=False),
    sa.PrimaryKeyConstraint("case_id", "partner_id", "measure_number"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("message_id", sa.String(26)),
    sa.Column("delivery_id", sa.String(26)),
    sa.Column("partner", sa.String(64)),
    sa.Column("purpose", sa.String(40)),
    sa.Column("legal_basis", sa.String(255)),
    sa.Column("detail", sa.JSON),
    # the hash chain (hub/store/audit_chain.py): the entry's place in its shard's chain, the hash of
    # the entry before it and its own hash over both and its content
    sa.Column("shard", sa.Integer, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.UniqueConstraint("shard", "seq"),  # an entry chained twice, or a fork, cannot be stored
    sa.Index(None, "message_id"),
    sa.Index(None, "at"),
)

#: the last entry of each shard's chain: locked by the transaction that appends, updated with it
audit_heads = sa.Table(
    "audit_heads",
    metadata,
    sa.Column("shard", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

#: heads recorded at a point in time (`hub audit anchor`, the workers): an operator keeps copies elsewhere
audit_anchors = sa.Table(
    "audit_anchors",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("shard", sa.Integer, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index(None, "at"),
)

# -- master person index (hub/dedup/person_index.py) -------------------------------------------------
persons = sa.Table(
    "persons",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("merged_into", sa.String(26)),  # set when an operator merged this person into another
)

person_records = sa.Table(
    "person_records",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("person_id", sa.String(26), nullable=False),
    sa.Column("origin_person_id", sa.String(26), nullable=False),  # where it was first filed: unmerge restores it
    sa.Column("partner_id", sa.String(64), nullable=False),
    sa.Column("local_id", sa.String(64), nullable=False),  # the partner's own id for the person (id cross-reference)
    sa.Column("data", sa.JSON, nullable=False),
    # the normalised comparison fields (hub/dedup/fastcompare.py), so that a lookup does not
    # decode and normalise every candidate's data; NULL or stale: recomputed from data
    sa.Column("norm", sa.Text),
    sa.Column("message_id", sa.String(26)),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    # a pseudonym the hub issued to this partner for the person (the data it was given), not yet a
    # record of the partner's own: never a candidate, never evidence about the person
    sa.Column("issued", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("partner_id", "local_id"),
    sa.Index(None, "person_id"),
)

person_keys = sa.Table(
    "person_keys",
    metadata,
    sa.Column("key", sa.String(96), nullable=False),
    sa.Column("record_id", sa.String(26), nullable=False),
    sa.PrimaryKeyConstraint("key", "record_id"),
    sa.Index(None, "record_id"),
)

match_reviews = sa.Table(
    "match_reviews",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("record_id", sa.String(26), nullable=False),
    sa.Column("candidate_person_id", sa.String(26), nullable=False),
    sa.Column("weight", sa.Float, nullable=False),
    sa.Column("detail", sa.JSON),
    sa.Column("status", sa.String(16), nullable=False),  # open | confirmed | rejected
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("decided_at", Timestamp),
    sa.Column("decided_by", sa.String(64)),
    sa.Index(None, "status", "created_at"),
)

person_events = sa.Table(
    "person_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("person_id", sa.String(26), nullable=False),
    sa.Column("other_person_id", sa.String(26)),
    sa.Column("record_id", sa.String(26)),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("detail", sa.JSON),
    sa.Index(None, "person_id"),
)

report_fingerprints = sa.Table(
    "report_fingerprints",
    metadata,
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("message_id", sa.String(26), nullable=False),
    sa.Column("at", Timestamp, nullable=False),
)


# -- the case chain: links, their record, deadlines and tasks (hub/chain/) ----------------------------
chain_links = sa.Table(
    "chain_links",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("case_id", sa.String(26), nullable=False),
    sa.Column("partner_id", sa.String(64), nullable=False),  # the provider (or service) of the link
    sa.Column("measure_number", sa.String(40), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),  # contracts/chain/lifecycle.yaml
    sa.Column("branch", sa.String(2)),
    sa.Column("period_start", sa.Date),
    sa.Column("period_end", sa.Date),
    sa.Column("weekly_hours", sa.Numeric(4, 1)),
    sa.Column("start_date", sa.Date),
    sa.Column("end_date", sa.Date),
    sa.Column("outcome", sa.String(40)),
    sa.Column("outcome_reason", sa.String(40)),
    sa.Column("destination", sa.String(40)),  # Verbleib
    sa.Column("test", sa.Boolean, nullable=False, server_default=sa.false()),  # opened by a test message
    sa.Column("opened_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Index(None, "case_id", "partner_id", "measure_number"),
)

chain_events = sa.Table(
    "chain_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(26), nullable=False),
    sa.Column("link_id", sa.String(26)),  # NULL: an event of the case (its status, a notification)
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),  # the lifecycle's `record`, or breach | task | notice | case_status
    sa.Column("message_id", sa.String(26)),
    sa.Column("message_type", sa.String(64)),
    sa.Column("status_from", sa.String(24)),
    sa.Column("status_to", sa.String(24)),
    sa.Column("detail", sa.JSON),  # only the fields the lifecycle `keep`s, never the message body
    sa.Index(None, "link_id", "id"),
    sa.Index(None, "case_id", "id"),
    sa.Index(None, "message_id"),
    # controlling: the cooperation feedbacks, decisions and invoice lines of a period per link, without the reports around them
    sa.Index(None, "kind", "at", "link_id"),
)

chain_deadlines = sa.Table(
    "chain_deadlines",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    #: what makes the deadline unique (link, kind, month): a rule firing twice expects once
    sa.Column("key", sa.String(120), nullable=False, unique=True),
    sa.Column("case_id", sa.String(26), nullable=False),
    sa.Column("link_id", sa.String(26)),
    sa.Column("partner_id", sa.String(64), nullable=False),  # who owes it: provider or case owner
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("message_type", sa.String(64)),  # the message that meets it (NULL: a task's completion)
    sa.Column("month", sa.String(7)),
    sa.Column("task_id", sa.String(26)),  # a decision deadline: met when this task is completed
    sa.Column("due_on", sa.Date, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # open | met | missed | cancelled
    sa.Column("rule_id", sa.String(64), nullable=False),
    sa.Column("rule_version", sa.String(40), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("resolved_at", Timestamp),
    sa.Column("met_on", sa.Date),  # the day the message arrived (also after a miss: a late report)
    sa.Column("met_by", sa.String(26)),
    sa.Index(None, "status", "due_on"),
    sa.Index(None, "link_id", "message_type", "status"),  # what a message meets: not every task's deadline
    sa.Index(None, "case_id"),
    # controlling: on time, late, missed of the deadlines due in a period, per link and kind, from the index alone
    sa.Index(None, "due_on", "link_id", "partner_id", "kind", "status", "met_on"),
)

chain_tasks = sa.Table(
    "chain_tasks",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    #: what makes the task unique (rule, cause): a redelivered cause opens it once
    sa.Column("key", sa.String(120), nullable=False, unique=True),
    sa.Column("case_id", sa.String(26), nullable=False),
    sa.Column("link_id", sa.String(26)),
    sa.Column("owner", sa.String(64), nullable=False),  # the steering agency whose task it is
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("title", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # open | done | cancelled
    sa.Column("due_on", sa.Date, nullable=False),
    sa.Column("rule_id", sa.String(64), nullable=False),
    sa.Column("rule_version", sa.String(40), nullable=False),
    sa.Column("proposed_measure", sa.String(64)),
    sa.Column("cause_message_id", sa.String(26)),
    sa.Column("cause_deadline_id", sa.String(26)),
    sa.Column("spec", sa.JSON, nullable=False),  # decisions and closed_by, as the rule said when it opened the task
    #: the message type that may close it (`closed_by`), or "expected" (the late report): a message
    #: looks only at the tasks it could close, not at every open task of its link
    sa.Column("closes_on", sa.String(64)),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("decision", sa.String(40)),
    sa.Column("remark", sa.Text),
    sa.Column("completed_at", Timestamp),
    sa.Column("completed_by", sa.String(64)),
    sa.Column("decision_message_id", sa.String(26)),
    sa.Index(None, "owner", "status", "due_on"),
    sa.Index(None, "case_id"),
    sa.Index(None, "link_id", "status", "closes_on"),
)

# -- master data versions and conflicts (hub/dedup/master_data.py) ------------------------------------
#: every value of a field of a person's master data the hub accepted: the field's head is its highest
#: version; a version is the person's master-data revision that set it (one per accepted message)
master_data_fields = sa.Table(
    "master_data_fields",
    metadata,
    sa.Column("person_id", sa.String(26), nullable=False),
    sa.Column("field", sa.String(96), nullable=False),  # dotted canonical path, e.g. person.address.street
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("value", sa.JSON, nullable=False),
    sa.Column("set_by", sa.String(64), nullable=False),  # the partner, or the operator who decided a conflict
    sa.Column("message_id", sa.String(26)),  # the message that carried it (the hub's own for a decision)
    sa.Column("set_at", Timestamp, nullable=False),
    sa.PrimaryKeyConstraint("person_id", "field", "version"),
)

#: what a partner holds of a person's master data: the values it sent (received) and the values
#: delivered to it (delivered: they count once the delivery is acknowledged or published)
master_data_exchanges = sa.Table(
    "master_data_exchanges",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("person_id", sa.String(26), nullable=False),
    sa.Column("partner_id", sa.String(64), nullable=False),
    sa.Column("message_id", sa.String(26), nullable=False),
    sa.Column("direction", sa.String(9), nullable=False),  # received | delivered
    sa.Column("held", sa.JSON, nullable=False),  # field -> value
    sa.Column("at", Timestamp, nullable=False),
    sa.Index(None, "person_id", "partner_id"),
    sa.Index(None, "message_id"),
)

#: two partners changed the same field from the same base to different values: the field keeps its
#: value until an operator picks side a (the hub's value) or b (the concurrent change)
data_conflicts = sa.Table(
    "data_conflicts",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("person_id", sa.String(26), nullable=False),
    sa.Column("field", sa.String(96), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # open | resolved
    sa.Column("detail", sa.JSON, nullable=False),  # base, a and b: partner, value, message (and version)
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("decided_at", Timestamp),
    sa.Column("decided_by", sa.String(64)),
    sa.Column("chosen", sa.String(1)),  # a | b
    sa.Column("resolution_message_id", sa.String(26)),  # the hub's message that forwarded the decision
    sa.Index(None, "status", "created_at"),
    sa.Index(None, "person_id", "status"),
)

# -- the console's people (hub/console/) ----------------------------------------------------------------
#: a local console account: an operator, a case manager of one steering agency, an auditor, an admin
console_users = sa.Table(
    "console_users",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("login", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(120), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),  # operator | case_manager | auditor | admin
    sa.Column("agency", sa.String(64)),  # the steering agency (partner id) of a case manager
    sa.Column("password_hash", sa.String(255), nullable=False),  # argon2id, with its own salt and parameters
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("failed_logins", sa.Integer, nullable=False, default=0),  # since the last success
    sa.Column("locked_until", Timestamp),
    sa.Column("locale", sa.String(8), nullable=False, default="de"),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("password_changed_at", Timestamp, nullable=False),
)

#: a signed-in browser: the cookie holds the token, the table its SHA-256 (a stolen database dump
#: opens no session); the CSRF token is per session; last_seen_at drives the idle timeout
console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(26), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("last_seen_at", Timestamp, nullable=False),
    sa.Index(None, "user_id"),
)


# -- the console's flows (hub/store/flows.py) ------------------------------------------------------------
#: outcomes per partner, message type and closed hour (and closed day), counted once from the history
#: by a periodic roll-up, so a page sums a few thousand counters instead of grouping a million messages
flow_counts = sa.Table(
    "flow_counts",
    metadata,
    sa.Column("span", sa.String(4), nullable=False),  # hour | day
    sa.Column("start", Timestamp, nullable=False),
    sa.Column("partner", sa.String(64), nullable=False),  # the message's sender
    sa.Column("message_type", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # OUTCOME_EVENTS
    sa.Column("n", sa.Integer, nullable=False),
    sa.PrimaryKeyConstraint("span", "start", "partner", "message_type", "outcome"),
    sqlite_with_rowid=False,  # the rows are their key: a range of it is read without a second lookup
)

#: how far the roll-up got: everything before `until` is in flow_counts, hours and days alike
flow_rollup = sa.Table(
    "flow_rollup",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # always 1
    sa.Column("until", Timestamp, nullable=False),
)


# -- alerts and their notifications (hub/alerts/) --------------------------------------------------------
#: one firing instance of an alert: the alert, its subject (a partner, a deadline, an owner and day)
#: and the episode (the n-th time it fires for that subject); the key is what several workers agree
#: on, so an instance is claimed once, and its notifications with it
alert_firings = sa.Table(
    "alert_firings",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("key", sa.String(240), nullable=False, unique=True),  # alert id | subject | episode
    sa.Column("alert_id", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(160), nullable=False),
    sa.Column("episode", sa.Integer, nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("text", sa.String(500), nullable=False),  # ids and counts only, never personal data
    sa.Column("link", sa.String(240), nullable=False),  # the console page, relative to HUB_CONSOLE_URL
    sa.Column("case_id", sa.String(26)),
    sa.Column("since", Timestamp, nullable=False),
    sa.Column("resolved_at", Timestamp),  # NULL while it fires
    sa.Index(None, "resolved_at", "alert_id"),
)

#: a notification of a firing on one channel, sent from here as from an outbox: at least once, with
#: its id as the webhook-id and the mail's Message-ID, so a receiver drops a second copy
alert_notifications = sa.Table(
    "alert_notifications",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("firing_id", sa.String(26), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | sent | failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("available_at", sa.Float, nullable=False),  # due (again) from then: a lease, or a backoff
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("sent_at", Timestamp),
    sa.UniqueConstraint("firing_id", "channel"),
    sa.Index(None, "status", "available_at"),
)
