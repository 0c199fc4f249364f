# The martech Airflow image: the official Airflow image plus the pinned stack and the package.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root requirements.txt /opt/martech/requirements.txt
RUN pip install --no-cache-dir -r /opt/martech/requirements.txt
COPY --chown=airflow:root pyproject.toml README.md /opt/martech/
COPY --chown=airflow:root include /opt/martech/include
RUN pip install --no-cache-dir --no-deps -e /opt/martech
