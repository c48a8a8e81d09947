package dev.edgeomd;

/** An update would have produced a non-finite state; the state was left unchanged. */
public class NumericalException extends ArithmeticException {
    private static final long serialVersionUID = 1L;

    public NumericalException(String message) {
        super(message);
    }
}
