"""The label service of WDQS (``SERVICE wikibase:label``) as plain SPARQL patterns over our own
graph: what :mod:`namkg.query.wdqs` puts where a label block stood. Never a remote call."""

from __future__ import annotations

import re

WD = "http://www.wikidata.org/entity/"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
SKOS_ALT = "http://www.w3.org/2004/02/skos/core#altLabel"
DESCRIPTION = "http://schema.org/description"  # WDQS's schema: is http://schema.org/


class Names:
    """Fresh variable names that clash with none of the query's."""

    def __init__(self, taken: set[str]):
        self.taken, self.n, self.made = taken, 0, set()

    def new(self, hint: str) -> str:
        while True:
            self.n += 1
            name = f"wdqs_{hint}_{self.n}"
            if name not in self.taken:
                self.taken.add(name)
                self.made.add(name)
                return name


def label_patterns(wanted: list[tuple[str, str, str]], languages: list[str], names: Names) -> str:
    """SPARQL binding each (base, property, target) of ``wanted`` as the label service would.

    ``?base`` is copied first (``BIND``) and each ``OPTIONAL`` is conditioned on the copy, so a
    row where ``?base`` is unbound keeps it unbound and is not joined with every label.
    A label falls back to the QID (or the IRI) when no language has one; descriptions and
    aliases have no fallback; aliases are joined with ", " as WDQS does.

    >>> print(label_patterns([("x", RDFS_LABEL, "xLabel")], ["ar", "en"], Names(set())))
    BIND(?x AS ?wdqs_x_1) \
OPTIONAL { ?x <http://www.w3.org/2000/01/rdf-schema#label> ?wdqs_l_2 \
FILTER(BOUND(?wdqs_x_1) && LANG(?wdqs_l_2) = "ar") } \
OPTIONAL { ?x <http://www.w3.org/2000/01/rdf-schema#label> ?wdqs_l_3 \
FILTER(BOUND(?wdqs_x_1) && LANG(?wdqs_l_3) = "en") } \
BIND(COALESCE(?wdqs_l_2, ?wdqs_l_3, IF(isIRI(?x), IF(STRSTARTS(STR(?x), \
"http://www.wikidata.org/entity/"), STRAFTER(STR(?x), "http://www.wikidata.org/entity/"), \
STR(?x)), ?wdqs_x_1)) AS ?xLabel)
    """
    parts, copies = [], {}
    for base, prop, target in wanted:
        if base not in copies:
            copies[base] = names.new(base if re.match(r"^[A-Za-z0-9_]+$", base) else "v")
            parts.append(f"BIND(?{base} AS ?{copies[base]})")
        guard = copies[base]
        found = []
        for lang in languages:
            v = names.new("l")
            found.append(f"?{v}")
            if prop == SKOS_ALT:
                a = names.new("a")
                parts.append(
                    f"OPTIONAL {{ {{ SELECT ?{base} "
                    f'(STRLANG(STR(GROUP_CONCAT(?{a}; separator=", ")), "{lang}") AS ?{v}) '
                    f"WHERE {{ ?{base} <{prop}> ?{a} "
                    f'FILTER(LANG(?{a}) = "{lang}") }} GROUP BY ?{base} }} '
                    f"FILTER(BOUND(?{guard})) }}"
                )
            else:
                parts.append(
                    f"OPTIONAL {{ ?{base} <{prop}> ?{v} "
                    f'FILTER(BOUND(?{guard}) && LANG(?{v}) = "{lang}") }}'
                )
        if prop == RDFS_LABEL:  # the guard is unbound here when ?base is: no fallback then
            found.append(
                f'IF(isIRI(?{base}), IF(STRSTARTS(STR(?{base}), "{WD}"), '
                f'STRAFTER(STR(?{base}), "{WD}"), STR(?{base})), ?{guard})'
            )
        parts.append(f"BIND(COALESCE({', '.join(found)}) AS ?{target})")
    return " ".join(parts)
