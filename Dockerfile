FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /coinledger ./cmd/coinledger

FROM gcr.io/distroless/static-debian12
COPY --from=build /coinledger /coinledger
ENTRYPOINT ["/coinledger", "serve"]
