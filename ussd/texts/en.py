"""English texts of the USSD menu and the SMS replies. Placeholders are filled by ``ussd.menu`` and
``ussd.services.sms``; ``ussd.texts.sw`` has the same names."""

# --- USSD ---------------------------------------------------------------------------------------
NOT_REGISTERED = "This number is not registered with HAVEN GRAZURI. Call {contact} to register."
WRONG_SERVICE = "This service is not available. Please check the code and try again."
SESSION_ERROR = "Sorry, something went wrong. Please dial again."
LOCKED = "Too many wrong PINs. USSD is locked until {time}. Call {contact} if you need help."
TOO_MANY_INVALID = "Too many invalid choices. Please dial again. Goodbye."
INVALID = "Invalid choice."

PIN_CREATE = "Welcome to HAVEN GRAZURI. Create a 4-digit PIN:"
PIN_CONFIRM = "Enter the new PIN again:"
PIN_NOT_FOUR_DIGITS = "A PIN is 4 digits."
PIN_TRIVIAL = "Too easy to guess. Avoid 0000, 1111, 1234."
PIN_MISMATCH = "The PINs did not match."
PIN_ENTER = "Welcome to HAVEN GRAZURI. Enter your PIN:"
PIN_WRONG = "Wrong PIN. {left} tries left. Enter your PIN:"
PIN_SAVED = "PIN saved."
PIN_CURRENT = "Enter your current PIN:"
PIN_NEW = "Enter a new 4-digit PIN:"
PIN_CHANGED = "Your PIN has been changed. Goodbye."

MAIN = (
    "1 My loans\n2 Recent payments\n3 How to pay\n4 Confirm my last payment\n5 Language / Lugha\n6 Change PIN"
)

MORE = "98 More"
BACK_HOME = "0 Back 00 Home"

LOANS_HEADER = "Your loans:"
LOANS_NONE = "You have no active loan."
LOAN_LINE = "{n} {loan} KES {outstanding} due {due}"
LOAN_DETAIL = "{loan} owes KES {outstanding}\nDue {due}"
LOAN_SPLIT = "{loan} owes:\nPenalties {penalties}\nFees {fees}\nInterest {interest}\nPrincipal {principal}"
LOAN_LAST_PAID = "Last paid {amount} on {date}"
LOAN_NEVER_PAID = "No payment yet"
LOAN_PAY = "Pay by M-Pesa: Paybill {paybill}, Account {loan}\n1 Send this by SMS"
PAY_SMS_SENT = "We will send the payment details by SMS. Goodbye."

PAYMENTS_HEADER = "Recent payments:"
PAYMENTS_NONE = "No M-Pesa payment found yet."
PAYMENT_LINE = "{code} KES {amount} {date} {target}"
NOT_MATCHED = "not matched yet: we are on it"

HOW_TO_PAY = "Pay by M-Pesa: Lipa na M-Pesa, Paybill {paybill}, Account: {account}."
HOW_TO_PAY_SMS = "1 Send this by SMS"
HOW_TO_PAY_NO_LOAN = "your loan number (see My loans)"

LAST_PAYMENT = (
    "Last payment {code} KES {amount} on {date} went to {target}.\n1 That is right\n2 Move it to another loan"
)
LAST_PAYMENT_UNMATCHED = "Last payment {code} KES {amount} on {date} is not matched yet: we are on it."
CONFIRMED = "Thank you for confirming. Goodbye."
MOVE_CHOOSE = "Move to which loan?"
MOVE_NO_OTHER = "You have no other active loan to move it to."
MOVE_CONFIRM = "Move KES {amount} ({code}) to {loan}?\n1 Yes\n2 No"
MOVED = "Done: {code} moved to {loan}. You will get an SMS. Goodbye."
MOVE_ALREADY = "{code} is already on {loan}. Goodbye."
MOVE_REVIEW = "We could not move {code} now. Our staff will review it and contact you. Goodbye."
MOVE_NO_PAYMENT = "We could not find that payment. Goodbye."
MOVE_NOT_YOUR_LOAN = "That is not one of your active loans. Goodbye."

LANGUAGE = "Choose language / Chagua lugha:\n1 English\n2 Kiswahili"
LANGUAGE_SAVED = "Language saved."

# --- SMS replies (one segment each) -------------------------------------------------------------
SMS_NOT_REGISTERED = "HAVEN GRAZURI: This number is not registered with us. Call {contact} for help."
SMS_HELP = (
    "HAVEN GRAZURI: Send BAL for balances, LOANS for loan numbers, PAY for how to pay, "
    "MOVE CODE LOAN-NUMBER to move a payment."
)
SMS_BALANCE = "HAVEN GRAZURI balance: {lines}"
SMS_BALANCE_LINE = "{loan} KES {outstanding} due {due}"
SMS_NO_LOANS = "HAVEN GRAZURI: You have no active loan. Thank you!"
SMS_LOANS = "HAVEN GRAZURI loans: {loans}. Pay to Paybill {paybill} with the loan number as account."
SMS_PAY = "HAVEN GRAZURI: Pay by M-Pesa to Paybill {paybill}, Account: {account}."
SMS_PAY_ACCOUNT = "your loan number (send LOANS to see them)"
SMS_MOVED = "HAVEN GRAZURI: Payment {code} is being moved to {loan}. You will get a confirmation."
SMS_MOVE_ALREADY = "HAVEN GRAZURI: Payment {code} is already on {loan}."
SMS_MOVE_REVIEW = (
    "HAVEN GRAZURI: We could not move {code} automatically. Our staff will review it and contact you."
)
SMS_MOVE_NO_PAYMENT = (
    "HAVEN GRAZURI: We could not find payment {code} for your number. Check the code and try again."
)
SMS_MOVE_NOT_YOUR_LOAN = "HAVEN GRAZURI: {loan} is not one of your active loans. Send LOANS to see them."
SMS_MOVE_USAGE = (
    "HAVEN GRAZURI: To move a payment send MOVE CODE LOAN-NUMBER, e.g. MOVE QK12AB34CD LOAN-000123."
)
SMS_PAY_DETAILS = (
    "HAVEN GRAZURI: Pay by M-Pesa to Paybill {paybill}, Account {loan}. Balance KES {outstanding}."
)
