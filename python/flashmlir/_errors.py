"""Exceptions of the flashmlir package."""

__all__ = ["FlashMLIRError", "LibraryNotFoundError"]


class FlashMLIRError(RuntimeError):
    """A failure reported by a FlashMLIR native library.

    ``str(e)`` carries the native message. ``status`` is the runtime's
    ``fa_status`` code (an int) for errors from libflashmlir_rt, ``None`` for
    the compiler library (which reports failures by message only);
    ``status_name`` is its name (``"FA_ERR_NO_KERNEL"``, ...) or ``None``.
    """

    def __init__(self, message, status=None, status_name=None):
        self.status = status
        self.status_name = status_name
        self.message = message
        if status_name:
            super().__init__(f"{status_name}: {message}")
        else:
            super().__init__(message)


class LibraryNotFoundError(FlashMLIRError):
    """A native library that the called function needs is not installed
    (or could not be loaded). ``library`` is its file name."""

    def __init__(self, message, library=None):
        self.library = library
        super().__init__(message)
