/* SPDX-License-Identifier: Apache-2.0 */
/* Names of KMIP result reasons, operations and tags, as the KMIP 1.4
 * specification spells them, for error messages and dumps. */
#include "vc_common.h"
#include "vc_kmip_defs.h"

struct name {
	uint32_t value;
	const char *name;
};

static const char *lookup(const struct name *t, size_t n, uint32_t value)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].value == value)
			return t[i].name;
	return NULL;
}

/* KMIP 1.4 section 9.1.3.2.29. */
static const struct name reasons[] = {
	{ VC_KMIP_REASON_ITEM_NOT_FOUND, "Item Not Found" },
	{ VC_KMIP_REASON_RESPONSE_TOO_LARGE, "Response Too Large" },
	{ VC_KMIP_REASON_AUTHENTICATION_NOT_SUCCESSFUL, "Authentication Not Successful" },
	{ VC_KMIP_REASON_INVALID_MESSAGE, "Invalid Message" },
	{ VC_KMIP_REASON_OPERATION_NOT_SUPPORTED, "Operation Not Supported" },
	{ VC_KMIP_REASON_MISSING_DATA, "Missing Data" },
	{ VC_KMIP_REASON_INVALID_FIELD, "Invalid Field" },
	{ VC_KMIP_REASON_FEATURE_NOT_SUPPORTED, "Feature Not Supported" },
	{ VC_KMIP_REASON_OPERATION_CANCELED_BY_REQUESTER, "Operation Canceled By Requester" },
	{ VC_KMIP_REASON_CRYPTOGRAPHIC_FAILURE, "Cryptographic Failure" },
	{ VC_KMIP_REASON_ILLEGAL_OPERATION, "Illegal Operation" },
	{ VC_KMIP_REASON_PERMISSION_DENIED, "Permission Denied" },
	{ VC_KMIP_REASON_OBJECT_ARCHIVED, "Object Archived" },
	{ VC_KMIP_REASON_INDEX_OUT_OF_BOUNDS, "Index Out of Bounds" },
	{ VC_KMIP_REASON_APPLICATION_NAMESPACE_NOT_SUPPORTED,
	  "Application Namespace Not Supported" },
	{ VC_KMIP_REASON_KEY_FORMAT_TYPE_NOT_SUPPORTED, "Key Format Type Not Supported" },
	{ VC_KMIP_REASON_KEY_COMPRESSION_TYPE_NOT_SUPPORTED,
	  "Key Compression Type Not Supported" },
	{ VC_KMIP_REASON_ENCODING_OPTION_ERROR, "Encoding Option Error" },
	{ VC_KMIP_REASON_KEY_VALUE_NOT_PRESENT, "Key Value Not Present" },
	{ VC_KMIP_REASON_ATTESTATION_REQUIRED, "Attestation Required" },
	{ VC_KMIP_REASON_ATTESTATION_FAILED, "Attestation Failed" },
	{ VC_KMIP_REASON_SENSITIVE, "Sensitive" },
	{ VC_KMIP_REASON_NOT_EXTRACTABLE, "Not Extractable" },
	{ VC_KMIP_REASON_OBJECT_ALREADY_EXISTS, "Object Already Exists" },
	{ VC_KMIP_REASON_GENERAL_FAILURE, "General Failure" },
};

/* KMIP 1.4 section 9.1.3.2.27. */
static const struct name operations[] = {
	{ VC_KMIP_OP_CREATE, "Create" },
	{ VC_KMIP_OP_CREATE_KEY_PAIR, "Create Key Pair" },
	{ VC_KMIP_OP_REGISTER, "Register" },
	{ VC_KMIP_OP_REKEY, "Re-key" },
	{ VC_KMIP_OP_DERIVE_KEY, "Derive Key" },
	{ VC_KMIP_OP_CERTIFY, "Certify" },
	{ VC_KMIP_OP_RECERTIFY, "Re-certify" },
	{ VC_KMIP_OP_LOCATE, "Locate" },
	{ VC_KMIP_OP_CHECK, "Check" },
	{ VC_KMIP_OP_GET, "Get" },
	{ VC_KMIP_OP_GET_ATTRIBUTES, "Get Attributes" },
	{ VC_KMIP_OP_GET_ATTRIBUTE_LIST, "Get Attribute List" },
	{ VC_KMIP_OP_ADD_ATTRIBUTE, "Add Attribute" },
	{ VC_KMIP_OP_MODIFY_ATTRIBUTE, "Modify Attribute" },
	{ VC_KMIP_OP_DELETE_ATTRIBUTE, "Delete Attribute" },
	{ VC_KMIP_OP_OBTAIN_LEASE, "Obtain Lease" },
	{ VC_KMIP_OP_GET_USAGE_ALLOCATION, "Get Usage Allocation" },
	{ VC_KMIP_OP_ACTIVATE, "Activate" },
	{ VC_KMIP_OP_REVOKE, "Revoke" },
	{ VC_KMIP_OP_DESTROY, "Destroy" },
	{ VC_KMIP_OP_ARCHIVE, "Archive" },
	{ VC_KMIP_OP_RECOVER, "Recover" },
	{ VC_KMIP_OP_VALIDATE, "Validate" },
	{ VC_KMIP_OP_QUERY, "Query" },
	{ VC_KMIP_OP_CANCEL, "Cancel" },
	{ VC_KMIP_OP_POLL, "Poll" },
	{ VC_KMIP_OP_NOTIFY, "Notify" },
	{ VC_KMIP_OP_PUT, "Put" },
	{ VC_KMIP_OP_REKEY_KEY_PAIR, "Re-key Key Pair" },
	{ VC_KMIP_OP_DISCOVER_VERSIONS, "Discover Versions" },
	{ VC_KMIP_OP_ENCRYPT, "Encrypt" },
	{ VC_KMIP_OP_DECRYPT, "Decrypt" },
	{ VC_KMIP_OP_SIGN, "Sign" },
	{ VC_KMIP_OP_SIGNATURE_VERIFY, "Signature Verify" },
	{ VC_KMIP_OP_MAC, "MAC" },
	{ VC_KMIP_OP_MAC_VERIFY, "MAC Verify" },
	{ VC_KMIP_OP_RNG_RETRIEVE, "RNG Retrieve" },
	{ VC_KMIP_OP_RNG_SEED, "RNG Seed" },
	{ VC_KMIP_OP_HASH, "Hash" },
	{ VC_KMIP_OP_CREATE_SPLIT_KEY, "Create Split Key" },
	{ VC_KMIP_OP_JOIN_SPLIT_KEY, "Join Split Key" },
	{ VC_KMIP_OP_IMPORT, "Import" },
	{ VC_KMIP_OP_EXPORT, "Export" },
};

/* KMIP 1.4 section 9.1.3.1, the tags vc_kmip_defs.h names. */
static const struct name tags[] = {
	{ VC_KMIP_TAG_ACTIVATION_DATE, "Activation Date" },
	{ VC_KMIP_TAG_APPLICATION_DATA, "Application Data" },
	{ VC_KMIP_TAG_APPLICATION_NAMESPACE, "Application Namespace" },
	{ VC_KMIP_TAG_APPLICATION_SPECIFIC_INFORMATION, "Application Specific Information" },
	{ VC_KMIP_TAG_ARCHIVE_DATE, "Archive Date" },
	{ VC_KMIP_TAG_ASYNCHRONOUS_CORRELATION_VALUE, "Asynchronous Correlation Value" },
	{ VC_KMIP_TAG_ASYNCHRONOUS_INDICATOR, "Asynchronous Indicator" },
	{ VC_KMIP_TAG_ATTRIBUTE, "Attribute" },
	{ VC_KMIP_TAG_ATTRIBUTE_INDEX, "Attribute Index" },
	{ VC_KMIP_TAG_ATTRIBUTE_NAME, "Attribute Name" },
	{ VC_KMIP_TAG_ATTRIBUTE_VALUE, "Attribute Value" },
	{ VC_KMIP_TAG_AUTHENTICATION, "Authentication" },
	{ VC_KMIP_TAG_BATCH_COUNT, "Batch Count" },
	{ VC_KMIP_TAG_BATCH_ERROR_CONTINUATION_OPTION, "Batch Error Continuation Option" },
	{ VC_KMIP_TAG_BATCH_ITEM, "Batch Item" },
	{ VC_KMIP_TAG_BATCH_ORDER_OPTION, "Batch Order Option" },
	{ VC_KMIP_TAG_BLOCK_CIPHER_MODE, "Block Cipher Mode" },
	{ VC_KMIP_TAG_COMPROMISE_DATE, "Compromise Date" },
	{ VC_KMIP_TAG_COMPROMISE_OCCURRENCE_DATE, "Compromise Occurrence Date" },
	{ VC_KMIP_TAG_CONTACT_INFORMATION, "Contact Information" },
	{ VC_KMIP_TAG_CREDENTIAL, "Credential" },
	{ VC_KMIP_TAG_CREDENTIAL_TYPE, "Credential Type" },
	{ VC_KMIP_TAG_CREDENTIAL_VALUE, "Credential Value" },
	{ VC_KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, "Cryptographic Algorithm" },
	{ VC_KMIP_TAG_CRYPTOGRAPHIC_LENGTH, "Cryptographic Length" },
	{ VC_KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS, "Cryptographic Parameters" },
	{ VC_KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK, "Cryptographic Usage Mask" },
	{ VC_KMIP_TAG_CUSTOM_ATTRIBUTE, "Custom Attribute" },
	{ VC_KMIP_TAG_DEACTIVATION_DATE, "Deactivation Date" },
	{ VC_KMIP_TAG_DESTROY_DATE, "Destroy Date" },
	{ VC_KMIP_TAG_DIGEST, "Digest" },
	{ VC_KMIP_TAG_ENCRYPTION_KEY_INFORMATION, "Encryption Key Information" },
	{ VC_KMIP_TAG_INITIAL_DATE, "Initial Date" },
	{ VC_KMIP_TAG_IV_COUNTER_NONCE, "IV/Counter/Nonce" },
	{ VC_KMIP_TAG_KEY, "Key" },
	{ VC_KMIP_TAG_KEY_BLOCK, "Key Block" },
	{ VC_KMIP_TAG_KEY_COMPRESSION_TYPE, "Key Compression Type" },
	{ VC_KMIP_TAG_KEY_FORMAT_TYPE, "Key Format Type" },
	{ VC_KMIP_TAG_KEY_MATERIAL, "Key Material" },
	{ VC_KMIP_TAG_KEY_VALUE, "Key Value" },
	{ VC_KMIP_TAG_KEY_WRAPPING_DATA, "Key Wrapping Data" },
	{ VC_KMIP_TAG_KEY_WRAPPING_SPECIFICATION, "Key Wrapping Specification" },
	{ VC_KMIP_TAG_LAST_CHANGE_DATE, "Last Change Date" },
	{ VC_KMIP_TAG_LINK, "Link" },
	{ VC_KMIP_TAG_LINK_TYPE, "Link Type" },
	{ VC_KMIP_TAG_LINKED_OBJECT_IDENTIFIER, "Linked Object Identifier" },
	{ VC_KMIP_TAG_MAXIMUM_ITEMS, "Maximum Items" },
	{ VC_KMIP_TAG_MAXIMUM_RESPONSE_SIZE, "Maximum Response Size" },
	{ VC_KMIP_TAG_MESSAGE_EXTENSION, "Message Extension" },
	{ VC_KMIP_TAG_NAME, "Name" },
	{ VC_KMIP_TAG_NAME_TYPE, "Name Type" },
	{ VC_KMIP_TAG_NAME_VALUE, "Name Value" },
	{ VC_KMIP_TAG_OBJECT_GROUP, "Object Group" },
	{ VC_KMIP_TAG_OBJECT_TYPE, "Object Type" },
	{ VC_KMIP_TAG_OFFSET, "Offset" },
	{ VC_KMIP_TAG_OPERATION, "Operation" },
	{ VC_KMIP_TAG_OPERATION_POLICY_NAME, "Operation Policy Name" },
	{ VC_KMIP_TAG_PADDING_METHOD, "Padding Method" },
	{ VC_KMIP_TAG_PROTOCOL_VERSION, "Protocol Version" },
	{ VC_KMIP_TAG_PROTOCOL_VERSION_MAJOR, "Protocol Version Major" },
	{ VC_KMIP_TAG_PROTOCOL_VERSION_MINOR, "Protocol Version Minor" },
	{ VC_KMIP_TAG_QUERY_FUNCTION, "Query Function" },
	{ VC_KMIP_TAG_REQUEST_HEADER, "Request Header" },
	{ VC_KMIP_TAG_REQUEST_MESSAGE, "Request Message" },
	{ VC_KMIP_TAG_REQUEST_PAYLOAD, "Request Payload" },
	{ VC_KMIP_TAG_RESPONSE_HEADER, "Response Header" },
	{ VC_KMIP_TAG_RESPONSE_MESSAGE, "Response Message" },
	{ VC_KMIP_TAG_RESPONSE_PAYLOAD, "Response Payload" },
	{ VC_KMIP_TAG_RESULT_MESSAGE, "Result Message" },
	{ VC_KMIP_TAG_RESULT_REASON, "Result Reason" },
	{ VC_KMIP_TAG_RESULT_STATUS, "Result Status" },
	{ VC_KMIP_TAG_REVOCATION_MESSAGE, "Revocation Message" },
	{ VC_KMIP_TAG_REVOCATION_REASON, "Revocation Reason" },
	{ VC_KMIP_TAG_REVOCATION_REASON_CODE, "Revocation Reason Code" },
	{ VC_KMIP_TAG_SECRET_DATA, "Secret Data" },
	{ VC_KMIP_TAG_SECRET_DATA_TYPE, "Secret Data Type" },
	{ VC_KMIP_TAG_SERVER_INFORMATION, "Server Information" },
	{ VC_KMIP_TAG_STATE, "State" },
	{ VC_KMIP_TAG_STORAGE_STATUS_MASK, "Storage Status Mask" },
	{ VC_KMIP_TAG_SYMMETRIC_KEY, "Symmetric Key" },
	{ VC_KMIP_TAG_TEMPLATE, "Template" },
	{ VC_KMIP_TAG_TEMPLATE_ATTRIBUTE, "Template-Attribute" },
	{ VC_KMIP_TAG_TIME_STAMP, "Time Stamp" },
	{ VC_KMIP_TAG_UNIQUE_BATCH_ITEM_ID, "Unique Batch Item ID" },
	{ VC_KMIP_TAG_UNIQUE_IDENTIFIER, "Unique Identifier" },
	{ VC_KMIP_TAG_USERNAME, "Username" },
	{ VC_KMIP_TAG_VENDOR_IDENTIFICATION, "Vendor Identification" },
	{ VC_KMIP_TAG_WRAPPING_METHOD, "Wrapping Method" },
	{ VC_KMIP_TAG_PASSWORD, "Password" },
	{ VC_KMIP_TAG_EXTENSION_INFORMATION, "Extension Information" },
	{ VC_KMIP_TAG_ATTRIBUTES, "Attributes" },
};

const char *vc_kmip_reason_name(uint32_t reason)
{
	const char *s = lookup(reasons, VC_ARRAY_SIZE(reasons), reason);

	return s ? s : "Unknown Result Reason";
}

const char *vc_kmip_operation_name(uint32_t op)
{
	const char *s = lookup(operations, VC_ARRAY_SIZE(operations), op);

	return s ? s : "Unknown Operation";
}

const char *vc_kmip_tag_name(uint32_t tag)
{
	return lookup(tags, VC_ARRAY_SIZE(tags), tag);
}
