FROM python:3.11-slim

WORKDIR /app
COPY sdk/ sdk/
COPY pyproject.toml README.md ./
COPY flagd/ flagd/
COPY stats/ stats/
RUN pip install --no-cache-dir ./sdk . && useradd --system --home /app flagd && chown flagd /app
USER flagd

ENV FLAGD_HOST=0.0.0.0 FLAGD_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz')"
ENTRYPOINT ["flagd"]
CMD ["serve"]
