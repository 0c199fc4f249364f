"""martech: warehouse-native marketing automation.

Importing the package is cheap on purpose: DAG files import ``martech`` at parse time, so heavy
dependencies (pandas, scikit-learn, great_expectations, sendgrid) are imported only inside the
submodules that need them.
"""

__version__ = "0.1.0"
