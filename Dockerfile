# One image for every role: worker, producer one-off, flower. Roles differ by command.
FROM python:3.11.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY deploy/constraints.txt ./deploy/
COPY newsflow ./newsflow
COPY worker ./worker
COPY producer ./producer
RUN pip install -c deploy/constraints.txt '.[worker]' flower

COPY examples ./examples
RUN useradd --create-home newsflow
USER newsflow

CMD ["newsflow", "--help"]
