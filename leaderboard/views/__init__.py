"""The leaderboard's pages (Streamlit scripts registered with ``st.navigation`` by ``leaderboard/app.py``).

Not called ``pages/``: Streamlit would also list a ``pages/`` folder beside the main script as
pages of its own (its older multipage mechanism).
"""
