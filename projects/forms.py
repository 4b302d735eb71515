from django import forms


class ShareForm(forms.Form):
    enabled = forms.BooleanField(required=False)
    photos = forms.BooleanField(required=False)
