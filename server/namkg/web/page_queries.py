"""The SPARQL the pages run: an entity's description for its data formats
(:func:`describe_query`), and for its HTML page its own triples (:func:`own_query`) and what
points at it (:func:`about_query`). Texts only; :mod:`namkg.web.pages` runs them (with the
data's prefixes declared).
"""

from __future__ import annotations


def describe_query(iri: str, template: str = "", pattern: str = "") -> str:
    """The entity's description: its triples, blank nodes it reaches (3 levels), triples to it;
    plus ``template`` made from the extra UNION branch ``pattern`` (the document's own)."""
    e = f"<{iri}>"
    extra = f"UNION {pattern}" if pattern else ""
    return f"""CONSTRUCT {{ ?s ?p ?o . {template} }} WHERE {{
      {{ {e} ?p ?o BIND({e} AS ?s) }}
      UNION {{ {e} ?p1 ?s FILTER(isBlank(?s)) ?s ?p ?o }}
      UNION {{ {e} ?p1 ?b1 FILTER(isBlank(?b1)) ?b1 ?p2 ?s FILTER(isBlank(?s)) ?s ?p ?o }}
      UNION {{ {e} ?p1 ?b1 FILTER(isBlank(?b1)) ?b1 ?p2 ?b2 FILTER(isBlank(?b2))
               ?b2 ?p3 ?s FILTER(isBlank(?s)) ?s ?p ?o }}
      UNION {{ ?s ?p {e} BIND({e} AS ?o) }}
      {extra}
    }}"""


# The entity page's queries are plain UNIONs of basic patterns (no BIND, property path or
# VALUES), which Virtuoso 7.2 and Oxigraph both run.


def own_query(iri: str, blanks: bool) -> str:
    """The entity's triples (``?b`` unbound) and, with ``blanks``, those of the blank nodes it
    reaches, 3 levels deep (``?b`` the blank node): in one result, so blank node ids agree."""
    e = f"<{iri}>"
    if not blanks:
        return f"SELECT ?b ?p ?o WHERE {{ {e} ?p ?o }}"
    return f"""SELECT ?b ?p ?o WHERE {{
      {{ {e} ?p ?o }}
      UNION {{ {e} ?p1 ?b FILTER(isBlank(?b)) ?b ?p ?o }}
      UNION {{ {e} ?p1 ?b1 FILTER(isBlank(?b1)) ?b1 ?p2 ?b FILTER(isBlank(?b)) ?b ?p ?o }}
      UNION {{ {e} ?p1 ?b1 FILTER(isBlank(?b1)) ?b1 ?p2 ?b2 FILTER(isBlank(?b2))
               ?b2 ?p3 ?b FILTER(isBlank(?b)) ?b ?p ?o }}
    }}"""


def about_query(iri: str) -> str:
    """What points at the entity (``?s ?p``); the types (``?type``), authors and quotes of those
    subjects, the entity's own quotes (``?s`` unbound) and every ``rdfs:subClassOf`` edge
    (``?class ?super``), each in its own branch."""
    e = f"<{iri}>"
    quote = ("OPTIONAL { ?quote oa:exact ?exact } OPTIONAL { ?quote nam:translation ?translation }"
             " OPTIONAL { ?quote nam:sentence ?sentence }")
    return f"""SELECT ?s ?p ?type ?author ?quote ?exact ?translation ?sentence ?class ?super
    WHERE {{
      {{ ?s ?p {e} }}
      UNION {{ ?s ?via {e} . ?s a ?type }}
      UNION {{ ?s ?via {e} . ?s prov:wasAttributedTo ?author }}
      UNION {{ ?s ?via {e} . ?s prov:wasDerivedFrom ?quote {quote} }}
      UNION {{ {e} prov:wasDerivedFrom ?quote {quote} }}
      UNION {{ ?class rdfs:subClassOf ?super }}
    }}"""
