# One image for every schemabot process: worker, beat, flower, the HTTP API and the emulator.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY schemabot ./schemabot
COPY engines ./engines
COPY tasks ./tasks
COPY planetscale_emulator ./planetscale_emulator
COPY devservers ./devservers
RUN pip install '.[flower,postgresql]'
RUN useradd --create-home schemabot
USER schemabot
CMD ["celery", "-A", "tasks", "worker", "--loglevel", "INFO"]
