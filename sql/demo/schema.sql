-- The demo table behind the demo_orders export kind. Created by `exports-admin seed-demo`,
-- never by migrations: a production database has no business holding it.
CREATE SCHEMA IF NOT EXISTS exports_demo;
COMMENT ON SCHEMA exports_demo IS 'Demo data for the demo_orders export kind; safe to drop.';

CREATE TABLE IF NOT EXISTS exports_demo.orders (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id     text NOT NULL,
    placed_at    timestamptz NOT NULL,
    status       text NOT NULL CHECK (status IN ('placed', 'shipped', 'delivered', 'refunded')),
    item         text NOT NULL,
    quantity     integer NOT NULL CHECK (quantity > 0),
    amount_cents bigint NOT NULL,
    currency     text NOT NULL,
    note         text
);
CREATE INDEX IF NOT EXISTS orders_owner_placed ON exports_demo.orders (owner_id, placed_at DESC);
COMMENT ON TABLE exports_demo.orders IS 'Fake orders; owner_id is the end user they belong to.';
