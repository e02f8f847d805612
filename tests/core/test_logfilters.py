import logging

from core.logfilters import MaskPhoneNumbersFilter, mask_phone_numbers


def test_masks_every_form_of_kenyan_number_in_a_message():
    text = "paid by +254712345678, alt 0110123456 and 254722000000; ref LOAN-000123 amount 1500"
    assert mask_phone_numbers(text) == (
        "paid by 2547*****678, alt 2541*****456 and 2547*****000; ref LOAN-000123 amount 1500"
    )


def test_leaves_digests_and_long_ids_alone():
    digest = "8556a495c390f3ba95d2bdf6d06436f2fd09f516531f0a7cd9591c60812fa46d"
    assert mask_phone_numbers(digest) == digest
    assert mask_phone_numbers("order 107123456789012") == "order 107123456789012"


def test_filter_rewrites_the_record_with_its_arguments(caplog):
    logger = logging.getLogger("tests.masking")
    logger.addFilter(MaskPhoneNumbersFilter())
    with caplog.at_level(logging.INFO, logger="tests.masking"):
        logger.info("SMS to %s queued", "+254712345678")
    assert caplog.messages == ["SMS to 2547*****678 queued"]
