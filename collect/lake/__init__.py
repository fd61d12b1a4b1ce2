"""The office's data lake (主計資料湖泊): every counting row of every round, queried and compared across rounds."""
