"""The words of the privacy officer's reports (HTML and XLSX), in English and Dutch.

Each entry is (English, Dutch). ``{name}`` placeholders are filled with ``str.format``; both
languages of an entry use the same placeholders (a test checks it).
"""

from __future__ import annotations

from typing import Literal

Language = Literal["en", "nl"]
LANGUAGES: tuple[Language, ...] = ("en", "nl")

STRINGS: dict[str, tuple[str, str]] = {
    # the page
    "title": ("Dry-run report", "Rapport van de proefrun"),
    "subtitle": (
        "What the retention rules of the RoPA would remove, and what must stay. Nothing has "
        "been changed: this is a dry run.",
        "Wat de bewaartermijnen uit het verwerkingsregister zouden laten verwijderen, en wat "
        "moet blijven. Er is niets gewijzigd: dit is een proefrun.",
    ),
    "plan": ("Plan", "Plan"),
    "created": ("Made on", "Gemaakt op"),
    "created_by": ("by", "door"),
    "clock": ("Due dates compared with", "Termijnen vergeleken met"),
    "ropa": ("RoPA", "Verwerkingsregister"),
    "timezone_note": ("Times in {tz}.", "Tijden in {tz}."),
    "incomplete": (
        "This plan is incomplete: a system or location could not be scanned. What is listed "
        "here is correct, but data elsewhere was not looked at.",
        "Dit plan is onvolledig: een systeem of locatie kon niet worden doorzocht. Wat hier "
        "staat klopt, maar elders is niet gekeken.",
    ),
    "failed_system": (
        "System {system} could not be reached: {reason}",
        "Systeem {system} was niet bereikbaar: {reason}",
    ),
    "contents": ("Contents", "Inhoud"),
    # summary
    "summary": ("At a glance", "In één oogopslag"),
    "overdue": ("past their retention period", "bewaartermijn verstreken"),
    "overdue_hint": ("items to remove once approved", "items die na goedkeuring weg kunnen"),
    "bytes": ("in size", "groot"),
    "most_overdue": ("days overdue, at most", "dagen over de termijn, hoogstens"),
    "most_overdue_hint": ("oldest due date {date}", "oudste vervaldatum {date}"),
    "none_overdue": ("nothing overdue", "niets over de termijn"),
    "held_card": ("under a legal hold", "onder een hold (bewaarblokkade)"),
    "refused_card": ("locked or protected", "vergrendeld of beschermd"),
    "no_clock_card": ("without a start date", "zonder startdatum"),
    "not_due_card": ("not yet due (counted)", "nog binnen de termijn (geteld)"),
    "waiting_card": ("waiting for an event", "wachten op een gebeurtenis"),
    "legacy_card": ("legacy systems still holding data", "uitgefaseerde systemen met nog gegevens"),
    "legacy_card_hint": (
        "{items} items of {subjects} people",
        "{items} items van {subjects} personen",
    ),
    "findings_card": ("scan findings", "bevindingen van de scan"),
    # approve
    "approve": ("To approve", "Goedkeuren"),
    "approve_intro": (
        "Execution acts only on what is approved, bound to this content hash; a changed plan "
        "or RoPA is refused.",
        "Uitvoering raakt alleen aan wat is goedgekeurd, gebonden aan deze inhoudshash; een "
        "gewijzigd plan of register wordt geweigerd.",
    ),
    "content_hash": ("Content hash", "Inhoudshash"),
    "ropa_digest": ("RoPA digest", "Digest van het register"),
    "approve_all": ("Approve the whole plan:", "Het hele plan goedkeuren:"),
    "approve_part": (
        "Or approve part of it, per activity or system:",
        "Of een deel, per verwerking of systeem:",
    ),
    "approve_reject": ("Or reject it:", "Of afwijzen:"),
    "approvers": (
        "{n} different people must approve; whoever ran the plan ({by}) cannot be one of them.",
        "{n} verschillende personen moeten goedkeuren; wie het plan maakte ({by}) telt niet mee.",
    ),
    "valid_until": (
        "The plan can be approved and executed until {date}.",
        "Het plan kan worden goedgekeurd en uitgevoerd tot {date}.",
    ),
    "auto_approved": (
        "Routine rules marked auto_approve run without approval: {labels}.",
        "Routineregels met auto_approve worden zonder goedkeuring uitgevoerd: {labels}.",
    ),
    "decisions": ("Decisions so far", "Besluiten tot nu toe"),
    "no_decisions": (
        "No one has approved or rejected this plan yet.",
        "Nog niemand heeft dit plan goedgekeurd of afgewezen.",
    ),
    "decision_approved": ("approved", "goedgekeurd"),
    "decision_rejected": ("rejected", "afgewezen"),
    "decision_line": (
        "{decision} by {by} on {at} ({scope})",
        "{decision} door {by} op {at} ({scope})",
    ),
    # charts
    "charts": ("Charts", "Grafieken"),
    "chart_activity": (
        "Overdue items per processing activity",
        "Items over de termijn per verwerking",
    ),
    "chart_system": ("Overdue items per system", "Items over de termijn per systeem"),
    "chart_age": ("How long items have been overdue", "Hoe lang items over de termijn zijn"),
    "chart_legacy": (
        "Legacy systems' exposure over time",
        "Blootstelling van uitgefaseerde systemen in de tijd",
    ),
    "chart_legacy_none": (
        "No decommissioned system holds data in this plan.",
        "Geen uitgefaseerd systeem bevat gegevens in dit plan.",
    ),
    "chart_legacy_one": (
        "Each dry run adds a point: this is the first plan with legacy data in the state store.",
        "Elke proefrun voegt een punt toe: dit is het eerste plan met gegevens op uitgefaseerde systemen.",
    ),
    "chart_legacy_axis": ("items on decommissioned systems", "items op uitgefaseerde systemen"),
    "chart_empty": ("Nothing is overdue.", "Niets is over de termijn."),
    "age_0": ("< 1 month", "< 1 maand"),
    "age_1": ("1–3 months", "1–3 maanden"),
    "age_2": ("3–12 months", "3–12 maanden"),
    "age_3": ("1–2 years", "1–2 jaar"),
    "age_4": ("2–5 years", "2–5 jaar"),
    "age_5": ("> 5 years", "> 5 jaar"),
    # legacy table
    "legacy": ("Legacy systems", "Uitgefaseerde systemen"),
    "legacy_intro": (
        "A decommissioned system that still answers and holds personal data is a top finding: "
        "its exposure grows every day it stays.",
        "Een uitgefaseerd systeem dat nog antwoordt en persoonsgegevens bevat is een topbevinding: "
        "elke dag dat het blijft, groeit het risico.",
    ),
    "decommissioned_on": ("decommissioned", "uitgefaseerd op"),
    "days_since": ("days since", "dagen geleden"),
    "reachable": ("still answers", "antwoordt nog"),
    "subjects": ("people", "personen"),
    "yes": ("yes", "ja"),
    "no": ("no", "nee"),
    # statuses
    "statuses": ("What the statuses mean", "Wat de statussen betekenen"),
    "status_due": (
        "past its retention period: the rule's action applies once approved",
        "bewaartermijn verstreken: na goedkeuring voert de regel zijn actie uit",
    ),
    "status_legacy_due": (
        "on a decommissioned system: all of it is due from the decommissioning date (plus grace)",
        "op een uitgefaseerd systeem: alles is verlopen vanaf de uitfaseringsdatum (plus uitsteltermijn)",
    ),
    "status_held": (
        "past its period, but under a legal hold: never changed while the hold lasts (the reason names the hold)",
        "over de termijn, maar onder een hold: blijft onaangeroerd zolang de hold geldt (de reden noemt de hold)",
    ),
    "status_locked": (
        "past its period, but the system forbids deleting it (S3 Object Lock: the reason gives the mode and the date until which it is locked)",
        "over de termijn, maar het systeem verbiedt verwijderen (S3 Object Lock: de reden noemt de modus en de datum tot wanneer)",
    ),
    "status_protected": (
        "past its period, but a privileged or emergency account that is never touched",
        "over de termijn, maar een beheer- of noodaccount dat nooit wordt aangeraakt",
    ),
    "status_no_clock": (
        "the start of the retention period could not be read (see the reason): nothing is done",
        "de start van de bewaartermijn kon niet worden gelezen (zie de reden): er gebeurt niets",
    ),
    "status_not_due": (
        "still within its retention period (counted, not listed)",
        "nog binnen de bewaartermijn (geteld, niet opgesomd)",
    ),
    "status_waiting_event": (
        "the event that starts the clock (e.g. leaving school) has not happened",
        "de gebeurtenis die de termijn start (bijv. vertrek van school) heeft nog niet plaatsgevonden",
    ),
    "label_due": ("due", "verlopen"),
    "label_legacy_due": ("legacy due", "verlopen (uitgefaseerd)"),
    "label_held": ("held", "hold"),
    "label_locked": ("locked", "vergrendeld"),
    "label_protected": ("protected", "beschermd"),
    "label_no_clock": ("no clock", "geen startdatum"),
    "label_not_due": ("not due", "niet verlopen"),
    "label_waiting_event": ("waiting for event", "wacht op gebeurtenis"),
    # tables
    "per_activity": ("Per activity and system", "Per verwerking en systeem"),
    "activity": ("activity", "verwerking"),
    "system": ("system", "systeem"),
    "location": ("location", "locatie"),
    "action": ("action", "actie"),
    "rule": ("rule", "regel"),
    "oldest_due": ("oldest due", "oudste vervaldatum"),
    "next_due": ("next due", "volgende vervaldatum"),
    "bytes_due": ("size due", "omvang verlopen"),
    "outcome": ("scan", "scan"),
    "scanned": ("scanned", "doorzocht"),
    "failed": ("failed", "mislukt"),
    "filter": ("Filter", "Filter"),
    "filter_placeholder": ("type to filter rows", "typ om rijen te filteren"),
    "all_statuses": ("all statuses", "alle statussen"),
    "shown": ("{shown} of {total} rows shown", "{shown} van {total} rijen getoond"),
    "sort_hint": ("Click a column header to sort.", "Klik op een kolomkop om te sorteren."),
    "activities": ("Activities and their items", "Verwerkingen en hun items"),
    "rule_line": ("{period} after {clock}, then {action}", "{period} na {clock}, dan {action}"),
    "grace_line": ("grace {grace}", "uitsteltermijn {grace}"),
    "auto_line": (
        "runs without approval (auto_approve)",
        "wordt zonder goedkeuring uitgevoerd (auto_approve)",
    ),
    "source": ("Source", "Bron"),
    "source_kind": ("kind", "soort"),
    "note": ("Note", "Toelichting"),
    "legal_basis": ("Legal basis", "Grondslag"),
    "sources_unknown": (
        "The RoPA at {path} has changed since this plan was made, or cannot be read here, so "
        "the sources of the rules are not shown.",
        "Het register in {path} is gewijzigd sinds dit plan is gemaakt, of is hier niet "
        "leesbaar; daarom staan de bronnen van de regels er niet bij.",
    ),
    "kind_statute": ("statute", "wet"),
    "kind_guideline": ("guideline", "richtlijn"),
    "kind_archival_list": ("archival selection list", "selectielijst"),
    "kind_code_of_conduct": ("code of conduct", "gedragscode"),
    "kind_policy": ("own policy", "eigen beleid"),
    "key": ("item", "item"),
    "subject": ("person", "persoon"),
    "clock_start": ("clock start", "start termijn"),
    "due_date": ("due date", "vervaldatum"),
    "days_overdue": ("days over", "dagen over"),
    "status": ("status", "status"),
    "reason": ("reason", "reden"),
    "size": ("size", "omvang"),
    "location_failed": (
        "This location could not be scanned: {error}",
        "Deze locatie kon niet worden doorzocht: {error}",
    ),
    "no_items": (
        "No item here needs action or explanation.",
        "Geen item hier vraagt om actie of uitleg.",
    ),
    "truncated": (
        "{shown} of {total} items are listed here (held, locked, protected and those without "
        "a start date first, then the most overdue). All {total} are in {files}.",
        "{shown} van {total} items staan hier (eerst hold, vergrendeld, beschermd en zonder "
        "startdatum, dan de langst verlopen). Alle {total} staan in {files}.",
    ),
    "counted_only": (
        "{count} items not yet due are counted, not listed.",
        "{count} items binnen de termijn zijn geteld, niet opgesomd.",
    ),
    # findings and the rest
    "findings": ("Findings during the scan", "Bevindingen tijdens de scan"),
    "finding_kind": ("kind", "soort"),
    "finding_where": ("where", "waar"),
    "finding_message": ("what", "wat"),
    "unenforceable": (
        "Activities the sweeper cannot enforce",
        "Verwerkingen die de sweeper niet kan handhaven",
    ),
    "unenforceable_intro": (
        "These activities have no retention rule or no locations, so nothing of theirs is "
        "checked: {ids}.",
        "Deze verwerkingen hebben geen bewaarregel of geen locaties, dus er wordt niets van "
        "gecontroleerd: {ids}.",
    ),
    "footer": (
        "This report is itself personal data: it names people and files. Keep it where the "
        "plans are and let it expire with them. Made by ropa-sweeper {version} on {at}.",
        "Dit rapport is zelf een persoonsgegeven: het noemt personen en bestanden. Bewaar het "
        "bij de plannen en laat het met hen verlopen. Gemaakt door ropa-sweeper {version} op {at}.",
    ),
    # coverage
    "coverage": ("Coverage of the RoPA", "Dekking van het register"),
    "coverage_intro": (
        "How much of what holds personal data the RoPA knows about, from discovery run {run} "
        "of {at} (the latest before this plan).",
        "Hoeveel van wat persoonsgegevens bevat het register kent, volgens ontdekkingsrun {run} "
        "van {at} (de laatste vóór dit plan).",
    ),
    "coverage_none": (
        "Discovery has not run before this plan, so the report cannot say which stores of "
        "personal data the RoPA misses. Run sweeper discover, or put the discover job on the "
        "daemon's timetable.",
        "Er is vóór dit plan geen ontdekkingsrun geweest, dus dit rapport kan niet zeggen "
        "welke opslag met persoonsgegevens in het register ontbreekt. Draai sweeper discover, "
        "of zet de discover-taak in het rooster van de daemon.",
    ),
    "coverage_incomplete": (
        "That run could not reach every system: what those systems hold is not counted.",
        "Die run kon niet elk systeem bereiken: wat die systemen bevatten is niet meegeteld.",
    ),
    "cov_activities": ("activities enforceable", "verwerkingen handhaafbaar"),
    "cov_activities_hint": (
        "{part} of {whole} have a retention rule and a location",
        "{part} van {whole} hebben een bewaarregel en een locatie",
    ),
    "cov_stores": ("stores registered", "opslagplaatsen geregistreerd"),
    "cov_personal": (
        "stores with personal data registered",
        "opslagplaatsen met persoonsgegevens geregistreerd",
    ),
    "cov_of_hint": ("{part} of {whole}", "{part} van {whole}"),
    "cov_records": (
        "personal records in registered stores",
        "persoonsrecords in geregistreerde opslag",
    ),
    "cov_records_hint": (
        "about {part} of about {whole} found",
        "ongeveer {part} van ongeveer {whole} gevonden",
    ),
    "cov_uninspectable": (
        "places that could not be inspected",
        "plekken die niet konden worden bekeken",
    ),
    "chart_coverage": ("Coverage over the discovery runs", "Dekking over de ontdekkingsruns"),
    "chart_coverage_axis": (
        "% registered (stores, records) or enforceable (activities)",
        "% geregistreerd (opslag, records) of handhaafbaar (verwerkingen)",
    ),
    "chart_coverage_one": (
        "Each discovery run adds a point: this is the first in the state store.",
        "Elke ontdekkingsrun voegt een punt toe: dit is de eerste.",
    ),
    "series_activities": ("activities", "verwerkingen"),
    "series_stores": ("stores", "opslag"),
    "series_personal": ("personal stores", "opslag pers.geg."),
    "series_records": ("personal records", "persoonsrecords"),
    "top_findings": (
        "What the RoPA does not cover, highest score first",
        "Wat het register niet dekt, hoogste score eerst",
    ),
    "top_findings_more": (
        "{more} more findings are in the discovery report {file} (sweeper discover lists them).",
        "Nog {more} bevindingen staan in het ontdekkingsrapport {file} (sweeper discover toont ze).",
    ),
    "top_findings_none": (
        "Discovery found no store with personal data that the RoPA does not cover.",
        "De ontdekkingsrun vond geen opslag met persoonsgegevens die het register niet dekt.",
    ),
    "finding_score": ("score", "score"),
    "finding_store": ("store", "opslag"),
    "finding_found": ("found", "gevonden"),
    "finding_records": ("personal records (est.)", "persoonsrecords (schatting)"),
    "finding_oldest": ("oldest", "oudste"),
    "finding_id": ("finding", "bevinding"),
    "finding_unregistered": ("unregistered", "niet geregistreerd"),
    "finding_partially_registered": ("partly registered", "deels geregistreerd"),
    "finding_uninspectable": ("could not inspect", "kon niet bekijken"),
    "finding_not_inspected": ("not inspected", "niet bekeken"),
    "finding_act": (
        "Register a store by adding the location that suggest prints to the activity its data "
        "belongs to, or acknowledge it with a reason; discovery never deletes anything.",
        "Registreer een opslagplaats door de locatie die suggest geeft toe te voegen aan de "
        "verwerking waar de gegevens bij horen, of erken haar met een reden; ontdekking "
        "verwijdert nooit iets.",
    ),
    # xlsx
    "sheet_summary": ("summary", "overzicht"),
    "xlsx_continued": ("continued on sheet {sheet}", "vervolg op blad {sheet}"),
    "xlsx_sheets": ("Sheets per activity", "Bladen per verwerking"),
    "xlsx_sheet": ("sheet", "blad"),
    "xlsx_items": ("items", "items"),
    "xlsx_times": ("Dates and times are in {tz}.", "Datums en tijden in {tz}."),
    "fingerprint": ("fingerprint", "vingerafdruk"),
    "details": ("details", "details"),
    "total": ("total", "totaal"),
}


def texts(language: Language) -> dict[str, str]:
    """Given a language, return every string of the reports in it."""
    index = LANGUAGES.index(language)
    return {key: pair[index] for key, pair in STRINGS.items()}
