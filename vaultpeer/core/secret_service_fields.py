"""How a Secret Service item is laid out in a vault item's fields (core/secret_service.py): in a
module that imports nothing, for the CLI's `edit --expose-to-secret-service`."""

#: The one collection vaultpeer offers (its D-Bus path element) and what it is called.
COLLECTION = "vaultpeer"
COLLECTION_LABEL = "Secret Service"
#: The field whose presence exposes an item to D-Bus clients (its value: the collection's name).
EXPOSED_FIELD = "secret-service"
#: The folder items created through the Secret Service are filed under (``vaultpeer ls`` shows it).
FOLDER = "Secret Service"
SECRET_FIELD = "secret"
#: Set (to "base64") when the secret is not UTF-8 text and the field holds its base64 form.
ENCODING_FIELD = "secret-encoding"
CONTENT_TYPE_FIELD = "content-type"
ATTRIBUTE_PREFIX = "attr:"
