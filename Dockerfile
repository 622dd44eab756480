# flagd: a slim, multi-stage image running as a non-root user.
#   docker build -t flagd . && docker run -e DATABASE_URL=postgresql://... -p 8080:8080 flagd

# 1. Build wheels of flagd, the SDK and every dependency (build tools stay in this stage).
FROM python:3.11-slim AS build
WORKDIR /src
COPY sdk/ sdk/
COPY pyproject.toml README.md ./
COPY flagd/ flagd/
COPY stats/ stats/
RUN pip wheel --no-cache-dir --wheel-dir /wheels ./sdk .

# 2. The runtime: the wheels installed, nothing else.
FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels flagd flagd-sdk \
    && rm -rf /wheels \
    && useradd --system --create-home --home-dir /var/lib/flagd --uid 10001 flagd
USER flagd
WORKDIR /var/lib/flagd

ENV FLAGD_HOST=0.0.0.0 \
    FLAGD_PORT=8080 \
    FLAGD_DATA_DIR=/var/lib/flagd/data \
    PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2)"
ENTRYPOINT ["flagd"]
CMD ["serve"]
