from django import forms

from projects.models import Project


class ShareForm(forms.Form):
    enabled = forms.BooleanField(required=False)
    photos = forms.BooleanField(required=False)


class ReprocessForm(forms.Form):
    preset = forms.ChoiceField(choices=Project.Preset.choices)
