# clinvoker with the Claude Code CLI. Build: docker compose build; run: docker compose up.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
RUN cargo build --release --bin clinvoker

FROM node:22-bookworm-slim
RUN npm install -g @anthropic-ai/claude-code@2.1.331 && useradd --create-home clinvoker
COPY --from=build /src/target/release/clinvoker /usr/local/bin/clinvoker
USER clinvoker
WORKDIR /home/clinvoker
EXPOSE 8080
ENTRYPOINT ["clinvoker"]
CMD ["serve", "--config", "/etc/clinvoker/clinvoker.toml", "--host", "0.0.0.0"]
