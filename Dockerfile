# A Sessionroom node. The project is built into a wheel and installed from it, not run from
# a source tree: the room page (web/) is package data inside the wheel, and the server
# finds it through the installed package (signaling/webpage.py).
#   docker build -t sessionroom .       (docker-compose.yml builds it for both nodes)

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY signaling/ signaling/
COPY media/ media/
COPY recordings/ recordings/
COPY web/ web/
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /wheels/ /wheels/
RUN pip install /wheels/*.whl && rm -rf /wheels
# Fails the build if the page did not make it into the installed package.
RUN python -c "from signaling.webpage import web_root; print('room page in', web_root())"

# An unprivileged user. /recordings belongs to it with mode 0700: an empty named volume
# mounted there takes this owner and mode on first use.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/sessionroom \
        --shell /usr/sbin/nologin sessionroom \
 && install -d -o sessionroom -g sessionroom -m 0700 /recordings
USER sessionroom
WORKDIR /home/sessionroom

ENV SESSIONROOM_HOST=0.0.0.0 \
    SESSIONROOM_RECORDINGS_DIR=/recordings
EXPOSE 8080

HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('SESSIONROOM_PORT', '8080') + '/healthz', timeout=4)"]

CMD ["sessionroom", "serve"]
