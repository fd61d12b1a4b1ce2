"""The workbook layer: cell addresses, merged ranges, title paths and units as a printed form shows them."""
