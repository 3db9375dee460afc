"""Choice vouchers (Wahlgutscheine, S5/S10): issued by a voucher subscription's sale, redeemed per ticket."""
