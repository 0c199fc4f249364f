# The martech Airflow image: the official Airflow image plus exactly the pinned lock and the package.
# The tag's Airflow version is the lock's (tests/stack/test_compose.py checks both).
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root requirements.txt /opt/martech/requirements.txt
RUN pip install --no-cache-dir -r /opt/martech/requirements.txt
COPY --chown=airflow:root pyproject.toml README.md /opt/martech/
COPY --chown=airflow:root include /opt/martech/include
# The package alone: every dependency came from the lock above.
RUN pip install --no-cache-dir --no-deps -e /opt/martech
# The state folder exists in the image, so a fresh named volume mounted there is writable for the
# airflow user and for any AIRFLOW_UID in group 0.
RUN mkdir -p /opt/airflow/martech-state && chmod g+rwX /opt/airflow/martech-state
