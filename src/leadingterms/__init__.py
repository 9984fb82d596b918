"""leadingterms: gradient leading terms of attention-only transformers.

Data flows one way:
corpus -> tokens -> basis functions -> predictions -> (training | pretrained comparison)
-> analyses -> report.  Each stage is one module or small package; ``leadingterms <command>``
is a thin layer over it (see ``leadingterms.cli``).
"""

__version__ = "0.1.0"
