#!/bin/sh
# Run once by the postgres image, on the first start with an empty volume: one role and one
# database per service that owns one (each service owns its data; none reads another's).
set -eu
for service in links users social_graph; do
  password_variable="$(echo "$service" | tr a-z A-Z)_PASSWORD"
  eval "password=\${$password_variable}"
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
       --set=role="$service" --set=password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
SQL
done
