-- Test-only objects in every test database: a gate the gated_orders kind reads, so a test
-- can make an export fail transiently (SQLSTATE 40001) until it opens the gate.
CREATE TABLE public.test_gate (open boolean NOT NULL);
INSERT INTO public.test_gate VALUES (true);

CREATE FUNCTION public.test_gate_open() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF NOT (SELECT open FROM public.test_gate) THEN
        RAISE EXCEPTION 'test gate is closed' USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN true;
END $$;
