"""nam-kg: a source-faithful knowledge graph of one article, served over SPARQL 1.1."""

__version__ = "0.1.0"
