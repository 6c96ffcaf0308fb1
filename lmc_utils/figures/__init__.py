"""Figures tier: one style (:mod:`.style`: labels, colours, line styles), the figure and table writers
(:mod:`.output`) and each notebook's plots (one module per study). Imports core and claims."""

from .output import output_dir, publish_verdicts, save_figure, save_table, save_verdicts, to_markdown  # noqa: F401
from .style import (METHOD_LABELS, METHOD_STYLES, STYLE, experiment_label, method_label, method_style,  # noqa: F401
                    setup)
