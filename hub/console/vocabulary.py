"""Words the console shows that come from data, not from a template: roles, statuses, kinds,
decisions, reasons, field names. Listed here so that the catalogue extraction finds them (`N_` only
marks a string); the pages translate them where they show them. A word missing here is shown as it
is stored, never as an error.
"""

from __future__ import annotations


def N_(text: str) -> str:
    return text


WORDS = (
    # roles
    N_("operator"), N_("case_manager"), N_("auditor"), N_("admin"),
    # message, delivery, case and task statuses
    N_("received"), N_("validated"), N_("routed"), N_("delivered"), N_("rejected"), N_("duplicate"), N_("dead"), N_("failed"),
    N_("pending"), N_("acknowledged"), N_("open"), N_("closed"), N_("done"), N_("cancelled"),
    # record entries of a link
    N_("assignment"), N_("answer"), N_("start"), N_("attendance"), N_("cooperation"), N_("assessment"), N_("invoice"), N_("change"),
    N_("exit"), N_("task"), N_("task_done"), N_("task_joined"), N_("decision"), N_("breach"), N_("notice"), N_("case_status"), N_("proposal"),
    # deadlines and tasks
    N_("cooperation_decision"), N_("next_link"), N_("overdue_report"), N_("obstacle"),
    # decisions
    N_("continue"), N_("end"), N_("assign_proposed"), N_("other_measure"), N_("none"), N_("close_chain"),
    # outcomes and destinations
    N_("regulaer"), N_("abbruch"), N_("arbeitsaufnahme"), N_("job_taken_up"), N_("dropout"),
    # alert severities
    N_("info"), N_("warning"), N_("critical"),
    # why an operator opens content
    N_("fault-analysis"), N_("partner-enquiry"), N_("data-protection-request"),
    # person fields and index events
    N_("given_name"), N_("family_name"), N_("birth_name"), N_("birth_date"), N_("sex"), N_("street"), N_("house_number"),
    N_("postcode"), N_("city"), N_("nationality"), N_("bg_number"),
    N_("filed"), N_("merged"), N_("unmerged"), N_("kept-apart"), N_("updated"), N_("pseudonym-issued"),
)
